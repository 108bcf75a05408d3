"""TRANSIT_OVERDUE: the trip has not arrived by its start + time limit (+ grace).

Checked on every event (its own time) and on timer ticks. Raised once, dated at the
deadline whatever finds it (an event, a tick, a judge rebuilding the trip: the alarm sink
then knows it again); the trip's end (arrival gate, handled outside the rules) is what
resolves it.
"""

from __future__ import annotations

from datetime import datetime

from server.rules.alarms import Effect, raise_
from server.rules.inputs import TripContext


def check_overdue(raised: bool, at: datetime, ctx: TripContext) -> tuple[bool, list[Effect]]:
    deadline = ctx.deadline
    if raised or deadline is None or at <= deadline:
        return raised, []
    effect = raise_(
        "TRANSIT_OVERDUE",
        deadline,
        None,
        deadline=deadline.isoformat(),
        time_limit_s=ctx.time_limit_s,
        overdue_s=round((at - deadline).total_seconds()),
    )
    return True, [effect]

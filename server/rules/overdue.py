"""TRANSIT_OVERDUE: the trip has not arrived by its start + time limit (+ grace).

Checked on every event (its own time) and on timer ticks. Raised once; the trip's end
(arrival gate, handled outside the rules) is what resolves it.
"""

from __future__ import annotations

from datetime import datetime

from server.rules.alarms import Effect, raise_
from server.rules.inputs import TripContext


def check_overdue(raised: bool, at: datetime, ctx: TripContext) -> tuple[bool, list[Effect]]:
    deadline = overdue_due(raised, ctx)
    if deadline is None or at <= deadline:
        return raised, []
    effect = raise_(
        "TRANSIT_OVERDUE",
        at,
        None,
        deadline=deadline.isoformat(),
        time_limit_s=ctx.time_limit_s,
        overdue_s=round((at - deadline).total_seconds()),
    )
    return True, [effect]


def overdue_due(raised: bool, ctx: TripContext) -> datetime | None:
    """The time after which `check_overdue` raises TRANSIT_OVERDUE; None once it has
    (or for a trip without a time limit)."""
    return None if raised else ctx.deadline

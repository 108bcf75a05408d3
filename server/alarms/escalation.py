"""Escalation of alarms nobody acknowledged in time, done by the server.

An alarm of an escalating severity (critical by default) still `active_unack` when
`escalate_after_min` minutes have passed since its `first_at` is escalated: its
`escalated_at` is set, its history gets a `system` step `escalate` (status unchanged),
the audit log an `alarm.escalate` entry, all in one transaction; then the alarm's
listeners (the live stream) hear of it. An alarm is escalated at most once: the UPDATE
is guarded by `escalated_at IS NULL`, so several server workers may run the check at
the same time.

The delay counts from `first_at`, the time the condition began (GNSS or device time):
a critical alarm that reaches the server late — positions buffered in a tunnel — is
escalated as soon as it is stored if it is already older than the delay.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update

from contract.ids import utc_now
from server.alarms.service import SYSTEM, AlarmService
from server.audit import append as audit_append
from server.audit import write_transaction
from server.store import schema

log = logging.getLogger(__name__)

#: Alarms escalated per transaction (a backlog is worked off in several).
BATCH = 500


@dataclass(frozen=True, slots=True)
class EscalationPolicy:
    after: timedelta
    severities: tuple[str, ...] = ("critical",)

    @classmethod
    def from_minutes(cls, after_min: float, severities: Sequence[str]) -> EscalationPolicy:
        return cls(timedelta(minutes=after_min), tuple(severities))

    def describe(self) -> str:
        minutes = self.after.total_seconds() / 60
        return f"unacknowledged {minutes:g} min after it was first raised"


def escalate_due(alarms: AlarmService, policy: EscalationPolicy, now: datetime) -> list[int]:
    """Escalate every alarm due at `now`; return their ids (the listeners are told)."""
    if not policy.severities:
        return []
    if now.tzinfo is None:
        raise ValueError("now must carry a time zone")
    escalated: list[int] = []
    while True:
        batch = _escalate_batch(alarms, policy, now)
        escalated.extend(batch)
        alarms.notify(batch)  # after the commit: listeners see what is stored
        if len(batch) < BATCH:
            return escalated


def _escalate_batch(alarms: AlarmService, policy: EscalationPolicy, now: datetime) -> list[int]:
    a = schema.alarms.c
    due = [
        a.status == "active_unack",
        a.severity.in_(policy.severities),
        a.escalated_at.is_(None),
        a.first_at <= now - policy.after,
    ]
    done: list[int] = []
    with write_transaction(alarms.engine) as conn:
        rows = conn.execute(
            select(a.id, a.type, a.trip_id, a.severity, a.first_at)
            .where(*due)
            .order_by(a.first_at, a.id)
            .limit(BATCH)
            .with_for_update(skip_locked=True)
        ).all()
        for row in rows:
            changed = conn.execute(
                update(schema.alarms)
                .where(a.id == row.id, *due)
                .values(escalated_at=now, updated_at=now)
            ).rowcount
            if changed != 1:
                continue  # acknowledged or escalated meanwhile
            detail = policy.describe()
            conn.execute(
                schema.alarm_events.insert().values(
                    alarm_id=row.id,
                    at=now,
                    actor=SYSTEM,
                    action="escalate",
                    from_status="active_unack",
                    to_status="active_unack",
                    comment=None,
                    detail=detail,
                )
            )
            audit_append(
                conn,
                SYSTEM,
                "alarm.escalate",
                "alarm",
                str(row.id),
                {
                    "type": row.type,
                    "trip_id": row.trip_id,
                    "severity": row.severity,
                    "after_min": policy.after.total_seconds() / 60,
                    "reason": detail,
                },
                now,
            )
            done.append(int(row.id))
    for alarm_id in done:
        log.warning("alarm %s escalated: %s", alarm_id, policy.describe())
    return done


class Escalator:
    """The periodic task: `await Escalator(...).run_forever()` in the server's TaskGroup."""

    def __init__(self, alarms: AlarmService, policy: EscalationPolicy, every_s: float) -> None:
        self.alarms = alarms
        self.policy = policy
        self.every_s = every_s

    def run_once(self, now: datetime | None = None) -> list[int]:
        return escalate_due(self.alarms, self.policy, now or utc_now())

    async def run_forever(self) -> None:
        if not self.policy.severities:
            log.info("alarm escalation is off (no escalate_severities)")
            return
        failing = False
        while True:
            try:
                await asyncio.to_thread(self.run_once)
                if failing:
                    log.info("alarm escalation check works again")
                failing = False
            except Exception:
                if not failing:  # once, not every period
                    log.exception("alarm escalation check failed; retrying every %ss", self.every_s)
                failing = True
            await asyncio.sleep(self.every_s)

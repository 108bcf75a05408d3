"""The judge's alarm sink: rule effects → alarms, each effect applied exactly once.

A trip can be judged again (late data, a server restart); the `rule_effects` table
remembers every (trip, type, raise|clear, time) already applied, in the same
transaction as the alarm change it made.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from sqlalchemy import Connection
from sqlalchemy.dialects import postgresql, sqlite

from contract.ids import utc_now
from server.alarms.service import AlarmService
from server.audit import write_transaction
from server.rules.alarms import Effect, Raise
from server.store import schema
from server.store.trip import Trip


class AlarmEffects:
    def __init__(self, alarms: AlarmService) -> None:
        self._alarms = alarms

    def apply(self, trip: Trip, effects: Sequence[Effect]) -> None:
        changed: list[int] = []
        with write_transaction(self._alarms.engine) as conn:
            for effect in effects:
                if not _first_time(conn, trip.trip_id, effect):
                    continue
                detail = json.dumps(effect.detail, ensure_ascii=False, sort_keys=True, default=str)
                if isinstance(effect, Raise):
                    outcome = self._alarms.raise_in_transaction(
                        conn,
                        trip.trip_id,
                        trip.vehicle_id,
                        effect.alarm_type,
                        effect.severity,
                        effect.at,
                        effect.position,
                        detail,
                    )
                    changed.append(outcome.alarm_id)
                else:
                    cleared = self._alarms.clear_in_transaction(
                        conn, trip.trip_id, effect.alarm_type, effect.at, detail
                    )
                    if cleared is not None:
                        changed.append(cleared)
        self._alarms.notify(changed)  # after the commit: listeners see what is stored


def _first_time(conn: Connection, trip_id: str, effect: Effect) -> bool:
    table = schema.rule_effects
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    stmt = (
        insert(table)
        .values(
            trip_id=trip_id,
            alarm_type=effect.alarm_type,
            kind="raise" if isinstance(effect, Raise) else "clear",
            at=effect.at,
            applied_at=utc_now(),
        )
        .on_conflict_do_nothing()
        .returning(table.c.trip_id)
    )
    return conn.execute(stmt).first() is not None

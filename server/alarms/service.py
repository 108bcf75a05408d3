"""Alarms in the store: raise/clear from the rules, officer actions, queries.

Every transition writes an `alarm_events` row; every officer action also writes an
audit entry (`server.audit.append`) in the same transaction. A refused action raises
`StoreError` and changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import Connection, Engine, Row, bindparam, case, func, select, text, update
from sqlalchemy.dialects import postgresql, sqlite

from contract.ids import utc_now
from server.alarms.lifecycle import (
    ACTIVE,
    CLEARED,
    INITIAL,
    SEVERITIES,
    SEVERITY_RANK,
    STATUSES,
    Action,
    Status,
    TransitionRefused,
    next_status,
)
from server.alarms.model import Alarm, AlarmEvent, ClearEffect, RaiseEffect, RaiseOutcome
from server.audit import append as audit_append
from server.audit import write_transaction
from server.store import StoreError, schema

log = logging.getLogger(__name__)

SYSTEM = "system"
MAX_COMMENT = 2000

AlarmState = Literal["active", "cleared", "all"]


@dataclass(frozen=True, slots=True)
class AlarmQuery:
    """Filters and paging of `AlarmService.find`; results by severity, then oldest first."""

    state: AlarmState = "all"
    status: str | None = None
    type: str | None = None
    severity: str | None = None
    trip_id: str | None = None
    vehicle_id: str | None = None
    assignee: str | None = None
    limit: int = 100
    offset: int = 0


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _must_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("alarm times must carry a time zone")
    return value.astimezone(UTC)


def _rank(column: Any) -> Any:
    return case(SEVERITY_RANK, value=column, else_=len(SEVERITIES))


def _unresolved(status: str, severity: str, at_least: str) -> bool:
    """Not yet cleared and acknowledged, and of severity `at_least` or above."""
    return status != "cleared_ack" and SEVERITY_RANK[severity] <= SEVERITY_RANK[at_least]


_TRIP_ALARMS = (  # built once: `unresolved_types` is read for every gate passage
    select(schema.alarms.c.type, schema.alarms.c.severity, schema.alarms.c.status)
    .where(schema.alarms.c.trip_id == bindparam("trip_id"))
    .order_by(_rank(schema.alarms.c.severity), schema.alarms.c.first_at, schema.alarms.c.id)
)


class AlarmService:
    """One per store; thread-safe (each call is its own transaction)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._upsert = _upsert_statement(engine.dialect.name)
        self._listeners: list[Callable[[Alarm], None]] = []

    # ---- change listeners (the live stream) ----------------------------------------------

    def add_listener(self, listener: Callable[[Alarm], None]) -> None:
        """Call `listener(alarm)` after every committed change (any thread; keep it quick)."""
        self._listeners.append(listener)

    def notify(self, alarm_ids: Iterable[int]) -> None:
        """Tell the listeners about alarms changed by a committed transaction."""
        if not self._listeners:
            return
        for alarm_id in dict.fromkeys(alarm_ids):
            alarm = self.get(alarm_id, history=False)
            if alarm is not None:
                self._tell(alarm)

    def _tell(self, alarm: Alarm) -> None:
        for listener in self._listeners:
            try:
                listener(alarm)
            except Exception:
                log.exception("alarm listener %s failed on alarm %s", listener, alarm.id)

    # ---- from the rules (actor `system`) ---------------------------------------------

    def raise_(
        self,
        trip_id: str,
        vehicle_id: str,
        alarm_type: str,
        severity: str,
        at: datetime,
        position: tuple[float, float] | None,
        detail: str,
    ) -> RaiseOutcome:
        """Open an alarm for (trip, type), or count a repeat of the active one.

        A repeat raises `count`, widens `first_at`/`last_at` to cover `at`, takes the
        newer detail and the newer position (a repeat without one keeps the last known),
        and keeps the more severe severity. Atomic under concurrent raises (an upsert on
        the partial unique index of active alarms).
        """
        with write_transaction(self.engine) as conn:
            return self.raise_in_transaction(
                conn, trip_id, vehicle_id, alarm_type, severity, at, position, detail
            )

    def raise_in_transaction(
        self,
        conn: Connection,
        trip_id: str,
        vehicle_id: str,
        alarm_type: str,
        severity: str,
        at: datetime,
        position: tuple[float, float] | None,
        detail: str,
    ) -> RaiseOutcome:
        """`raise_` inside the caller's transaction (commits or rolls back with it)."""
        if severity not in SEVERITY_RANK:
            raise StoreError("invalid", f"severity must be one of {', '.join(SEVERITIES)}")
        at = _must_utc(at)
        lon, lat = position if position is not None else (None, None)
        alarm_id, count = conn.execute(
            self._upsert,
            {
                "type": alarm_type,
                "severity": severity,
                "trip_id": trip_id,
                "vehicle_id": vehicle_id,
                "first_at": at,
                "last_at": at,
                "count": 1,
                "lon": lon,
                "lat": lat,
                "status": INITIAL,
                "assignee": None,
                "detail": detail,
                "cleared_at": None,
                "updated_at": utc_now(),
            },
        ).one()
        if count == 1:
            self._event(conn, alarm_id, at, SYSTEM, "raise", None, INITIAL, None, detail)
            log.info("alarm %s %s raised for trip %s: %s", alarm_id, alarm_type, trip_id, detail)
        return RaiseOutcome(int(alarm_id), count == 1, int(count))

    def clear(self, trip_id: str, alarm_type: str, at: datetime, detail: str) -> int | None:
        """The rule's condition is gone: clear the active (trip, type) alarm, if any.

        Returns the cleared alarm's id, or None when none was active.
        """
        with write_transaction(self.engine) as conn:
            return self.clear_in_transaction(conn, trip_id, alarm_type, at, detail)

    def clear_in_transaction(
        self, conn: Connection, trip_id: str, alarm_type: str, at: datetime, detail: str
    ) -> int | None:
        """`clear` inside the caller's transaction (commits or rolls back with it)."""
        at = _must_utc(at)
        a = schema.alarms.c
        for _ in range(3):  # the guarded UPDATE loses only to a concurrent officer action
            row = conn.execute(
                select(a.id, a.status)
                .where(a.trip_id == trip_id, a.type == alarm_type, a.status.in_(ACTIVE))
                .with_for_update()
            ).first()
            if row is None:
                return None
            to = next_status(row.status, "clear")
            changed = conn.execute(
                update(schema.alarms)
                .where(a.id == row.id, a.status == row.status)
                .values(status=to, cleared_at=at, updated_at=utc_now())
            ).rowcount
            if changed == 1:
                self._event(conn, row.id, at, SYSTEM, "clear", row.status, to, None, detail)
                log.info("alarm %s %s of trip %s cleared: %s", row.id, alarm_type, trip_id, detail)
                return int(row.id)
        raise StoreError("conflict", f"alarm {alarm_type} of trip {trip_id} keeps changing")

    def apply(
        self, trip_id: str, vehicle_id: str, effects: Iterable[RaiseEffect | ClearEffect]
    ) -> None:
        """Apply the rules' `Raise`/`Clear` effects for one trip, in order, in one
        transaction."""
        self.apply_many([(trip_id, vehicle_id, effects)])

    def apply_many(
        self, batch: Iterable[tuple[str, str, Iterable[RaiseEffect | ClearEffect]]]
    ) -> None:
        """Apply the effects of several trips — `(trip_id, vehicle_id, effects)` — in one
        transaction: what the ingest path calls once per message batch."""
        changed: list[int] = []
        with write_transaction(self.engine) as conn:
            for trip_id, vehicle_id, effects in batch:
                for effect in effects:
                    if isinstance(effect, RaiseEffect):
                        outcome = self.raise_in_transaction(
                            conn,
                            trip_id,
                            vehicle_id,
                            effect.alarm_type,
                            effect.severity,
                            effect.at,
                            effect.position,
                            effect.detail,
                        )
                        changed.append(outcome.alarm_id)
                    else:
                        cleared = self.clear_in_transaction(
                            conn, trip_id, effect.alarm_type, effect.at, effect.detail
                        )
                        if cleared is not None:
                            changed.append(cleared)
        self.notify(changed)

    # ---- officer actions (audited) ----------------------------------------------------

    def ack(self, alarm_id: int, actor: str, comment: str) -> Alarm:
        return self._act(alarm_id, actor, "ack", comment)

    def officer_clear(self, alarm_id: int, actor: str, comment: str) -> Alarm:
        return self._act(alarm_id, actor, "clear", comment)

    def assign(self, alarm_id: int, actor: str, assignee: str | None, comment: str) -> Alarm:
        """Give the alarm to `assignee` (None takes it back)."""
        return self._act(alarm_id, actor, "assign", comment, assignee=assignee)

    def comment(self, alarm_id: int, actor: str, comment: str) -> Alarm:
        return self._act(alarm_id, actor, "comment", comment)

    def _act(
        self,
        alarm_id: int,
        actor: str,
        action: Action,
        comment: str,
        assignee: str | None = None,
    ) -> Alarm:
        comment = (comment or "").strip()
        if not comment:
            raise StoreError("invalid", f"{action} needs a comment", "comment")
        if len(comment) > MAX_COMMENT:
            raise StoreError("invalid", f"comment longer than {MAX_COMMENT} characters", "comment")
        if not actor or actor == SYSTEM:
            raise StoreError("forbidden", f"actor {actor!r} may not act on alarms", "actor")
        a = schema.alarms.c
        now = utc_now()
        with write_transaction(self.engine) as conn:
            row = conn.execute(
                select(a.status, a.assignee).where(a.id == alarm_id).with_for_update()
            ).first()
            if row is None:
                raise StoreError("not_found", f"no alarm {alarm_id}", "alarm_id")
            status: Status = row.status
            try:
                to = next_status(status, action)
            except TransitionRefused as err:
                raise StoreError("conflict", f"alarm {alarm_id}: {err}", "status") from err
            values: dict[str, Any] = {"status": to, "updated_at": now}
            details: dict[str, Any] = {"from": status, "to": to, "comment": comment}
            event_detail = None
            if action == "clear":
                values["cleared_at"] = now
            if action == "assign":
                values["assignee"] = assignee
                details |= {"assignee": assignee, "previous_assignee": row.assignee}
                event_detail = f"assignee {row.assignee or '-'} → {assignee or '-'}"
            changed = conn.execute(
                update(schema.alarms).where(a.id == alarm_id, a.status == status).values(**values)
            ).rowcount
            if changed != 1:  # cannot happen under the row lock; never write half a change
                raise StoreError("conflict", f"alarm {alarm_id} changed meanwhile", "status")
            self._event(conn, alarm_id, now, actor, action, status, to, comment, event_detail)
            audit_append(conn, actor, f"alarm.{action}", "alarm", str(alarm_id), details, now)
        log.info("alarm %s: %s by %s (%s → %s)", alarm_id, action, actor, status, to)
        found = self.get(alarm_id)
        assert found is not None
        self._tell(found)
        return found

    @staticmethod
    def _event(
        conn: Connection,
        alarm_id: int,
        at: datetime,
        actor: str,
        action: str,
        from_status: str | None,
        to_status: str,
        comment: str | None,
        detail: str | None,
    ) -> None:
        conn.execute(
            schema.alarm_events.insert().values(
                alarm_id=alarm_id,
                at=at,
                actor=actor,
                action=action,
                from_status=from_status,
                to_status=to_status,
                comment=comment,
                detail=detail,
            )
        )

    # ---- queries ------------------------------------------------------------------------

    def get(self, alarm_id: int, history: bool = True) -> Alarm | None:
        """One alarm with its comments and (by default) its whole history."""
        with self.engine.connect() as conn:
            row = conn.execute(select(schema.alarms).where(schema.alarms.c.id == alarm_id)).first()
            if row is None:
                return None
            events = self._events(conn, [alarm_id])
        mine = events.get(alarm_id, [])
        return _alarm(row, mine, tuple(mine) if history else None)

    def find(self, query: AlarmQuery) -> tuple[list[Alarm], int]:
        """A page of alarms matching `query` and how many match in all."""
        a = schema.alarms.c
        conditions: list[Any] = []
        if query.state == "active":
            conditions.append(a.status.in_(ACTIVE))
        elif query.state == "cleared":
            conditions.append(a.status.in_(CLEARED))
        for column, value in (
            (a.status, query.status),
            (a.type, query.type),
            (a.severity, query.severity),
            (a.trip_id, query.trip_id),
            (a.vehicle_id, query.vehicle_id),
            (a.assignee, query.assignee),
        ):
            if value is not None:
                conditions.append(column == value)
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(schema.alarms)
                .where(*conditions)
                .order_by(_rank(a.severity), a.first_at, a.id)
                .limit(query.limit)
                .offset(query.offset)
            ).all()
            total = conn.execute(
                select(func.count()).select_from(schema.alarms).where(*conditions)
            ).scalar_one()
            events = self._events(conn, [r.id for r in rows])
        return [_alarm(r, events.get(r.id, []), None) for r in rows], int(total)

    def active_by_vehicle(self) -> dict[str, tuple[list[int], str]]:
        """Vehicle → (ids of its active alarms, the most severe severity among them)."""
        a = schema.alarms.c
        out: dict[str, tuple[list[int], str]] = {}
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(a.vehicle_id, a.id, a.severity).where(a.status.in_(ACTIVE)).order_by(a.id)
            ).all()
        for vehicle, alarm_id, severity in rows:
            ids, worst = out.get(vehicle, ([], severity))
            ids.append(int(alarm_id))
            if SEVERITY_RANK.get(severity, 9) < SEVERITY_RANK.get(worst, 9):
                worst = severity
            out[vehicle] = (ids, worst)
        return out

    def unresolved(self, trip_id: str, at_least: str = "major") -> list[Alarm]:
        """Alarms of a trip not yet cleared and acknowledged, of severity `at_least` or
        above: what blocks an automatic release (DESIGN.md, arrival gate)."""
        alarms, _ = self.find(AlarmQuery(trip_id=trip_id, limit=10_000))
        return [x for x in alarms if _unresolved(x.status, x.severity, at_least)]

    def unresolved_types(
        self, trip_id: str, at_least: str = "major", conn: Connection | None = None
    ) -> tuple[str, ...]:
        """The types of `unresolved(trip_id, at_least)`, in its order, in one query (a
        gate decision reads them for every passage)."""
        if conn is None:
            with self.engine.connect() as own:
                return self.unresolved_types(trip_id, at_least, own)
        rows = conn.execute(_TRIP_ALARMS, {"trip_id": trip_id})
        return tuple(
            kind for kind, severity, status in rows if _unresolved(status, severity, at_least)
        )

    @staticmethod
    def _events(conn: Connection, alarm_ids: Sequence[int]) -> dict[int, list[AlarmEvent]]:
        if not alarm_ids:
            return {}
        e = schema.alarm_events.c
        out: dict[int, list[AlarmEvent]] = {}
        for r in conn.execute(
            select(schema.alarm_events).where(e.alarm_id.in_(alarm_ids)).order_by(e.id)
        ):
            at = _utc(r.at)
            assert at is not None
            out.setdefault(r.alarm_id, []).append(
                AlarmEvent(
                    r.id, at, r.actor, r.action, r.from_status, r.to_status, r.comment, r.detail
                )
            )
        return out


def _upsert_statement(dialect: str) -> Any:
    """INSERT a new active alarm or, on the partial unique index, count a repeat."""
    a = schema.alarms.c
    insert = (postgresql if dialect == "postgresql" else sqlite).insert
    stmt = insert(schema.alarms)
    new = stmt.excluded
    newer = new.last_at >= a.last_at
    newer_fix = newer & new.lon.is_not(None) & new.lat.is_not(None)
    return stmt.on_conflict_do_update(
        index_elements=[a.trip_id, a.type],
        index_where=text(schema.ACTIVE_ALARM_PREDICATE),
        set_={
            "count": a.count + 1,
            "first_at": case((new.first_at < a.first_at, new.first_at), else_=a.first_at),
            "last_at": case((newer, new.last_at), else_=a.last_at),
            "lon": case((newer_fix, new.lon), else_=a.lon),
            "lat": case((newer_fix, new.lat), else_=a.lat),
            "detail": case((newer, new.detail), else_=a.detail),
            "severity": case(
                (_rank(new.severity) < _rank(a.severity), new.severity), else_=a.severity
            ),
            "updated_at": new.updated_at,
        },
    ).returning(a.id, a.count)


def _alarm(
    row: Row[Any], events: list[AlarmEvent], history: tuple[AlarmEvent, ...] | None
) -> Alarm:
    m = row._mapping
    first_at, last_at = _utc(m["first_at"]), _utc(m["last_at"])
    assert first_at is not None and last_at is not None
    position = (m["lon"], m["lat"]) if m["lon"] is not None and m["lat"] is not None else None
    return Alarm(
        id=int(m["id"]),
        type=m["type"],
        severity=m["severity"],
        trip_id=m["trip_id"],
        vehicle_id=m["vehicle_id"],
        first_at=first_at,
        last_at=last_at,
        count=int(m["count"]),
        position=position,
        status=m["status"],
        assignee=m["assignee"],
        detail=m["detail"],
        cleared_at=_utc(m["cleared_at"]),
        comments=tuple(ev for ev in events if ev.comment),
        history=history,
        escalated_at=_utc(m["escalated_at"]),
    )


__all__ = ["STATUSES", "SYSTEM", "AlarmQuery", "AlarmService"]

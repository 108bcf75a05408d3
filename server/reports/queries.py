"""The reports' reads (SQLAlchemy Core; the same statements on SQLite and PostgreSQL).

Times are bound as UTC (everything stored is UTC); rows come back as aware UTC datetimes.
Time-zone arithmetic is not portable between the two databases, so calendar days are
worked out in Python (`Window.bounds`) and the database only compares times with them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import ColumnElement, Connection, Integer, and_, case, func, literal, select

from server.store import schema
from server.store.database import as_utc


@dataclass(frozen=True, slots=True)
class ArrivedTrip:
    trip_id: str
    route_id: str
    started_at: datetime
    arrived_at: datetime

    @property
    def minutes(self) -> float:
        return (self.arrived_at - self.started_at).total_seconds() / 60.0


def arrived_trips(conn: Connection, start: datetime, end: datetime) -> list[ArrivedTrip]:
    """Trips that left their departure gate and reached their destination, arriving in
    `[start, end)`. The arrival is the first passage decided as the trip's arrival (the
    truck is at the gate, whether released or held), else the trip's end time."""
    t, p = schema.trips.c, schema.passages.c
    arrivals = (
        select(p.trip_id, func.min(p.ts).label("arrived_at"))
        .where(p.phase == "arrival", p.trip_id.is_not(None))
        .group_by(p.trip_id)
        .subquery()
    )
    arrived_at = func.coalesce(arrivals.c.arrived_at, t.ended_at)
    query = (
        select(t.trip_id, t.route_id, t.started_at, arrived_at.label("arrived_at"))
        .select_from(schema.trips.outerjoin(arrivals, arrivals.c.trip_id == t.trip_id))
        .where(t.started_at.is_not(None))
        .where(arrived_at >= start, arrived_at < end, arrived_at >= t.started_at)
        .order_by(t.route_id, t.trip_id)
    )
    out = []
    for row in conn.execute(query):
        started, arrived = as_utc(row.started_at), as_utc(row.arrived_at)
        assert started is not None and arrived is not None  # filtered in SQL
        out.append(ArrivedTrip(row.trip_id, row.route_id, started, arrived))
    return out


@dataclass(frozen=True, slots=True)
class AlarmGroup:
    """Alarms of one severity sharing `key` (their type, or their trip's route)."""

    key: str | None
    severity: str
    alarms: int
    occurrences: int


def alarm_groups(
    conn: Connection, start: datetime, end: datetime, by: Literal["type", "route"]
) -> list[AlarmGroup]:
    """Alarms first raised in `[start, end)` counted per (type or route, severity), with
    their repeats. An alarm on no declared trip (a gate passage that matched nothing) has
    the route None."""
    a, t = schema.alarms.c, schema.trips.c
    key = a.type if by == "type" else t.route_id
    source = (
        schema.alarms
        if by == "type"
        else schema.alarms.outerjoin(schema.trips, t.trip_id == a.trip_id)
    )
    query = (
        select(
            key.label("key"),
            a.severity,
            func.count().label("alarms"),
            func.coalesce(func.sum(a.count), 0).label("occurrences"),
        )
        .select_from(source)
        .where(a.first_at >= start, a.first_at < end)
        .group_by(key, a.severity)
    )
    return [
        AlarmGroup(row.key, row.severity, int(row.alarms), int(row.occurrences))
        for row in conn.execute(query)
    ]


def alarm_days(conn: Connection, bounds: Sequence[datetime]) -> list[AlarmGroup]:
    """Alarms first raised in `[bounds[0], bounds[-1])` counted per (day, severity), day `i`
    being `[bounds[i], bounds[i+1])` (`key` is `i` as text). The caller works out the
    bounds (local midnights in UTC): the database only compares times, so both engines
    agree, and the counting stays in the database however many alarms there are."""
    if len(bounds) < 2:
        raise ValueError("need at least one day: two bounds")
    a = schema.alarms.c
    inner_bounds = bounds[1:-1]
    day: ColumnElement[Any] = (
        case(*((a.first_at < b, i) for i, b in enumerate(inner_bounds)), else_=len(inner_bounds))
        if inner_bounds
        else literal(0, Integer)
    )
    rows = (
        select(day.label("day"), a.severity, a.count.label("repeats"))
        .where(a.first_at >= bounds[0], a.first_at < bounds[-1])
        .subquery()
    )
    query = select(
        rows.c.day,
        rows.c.severity,
        func.count().label("alarms"),
        func.coalesce(func.sum(rows.c.repeats), 0).label("occurrences"),
    ).group_by(rows.c.day, rows.c.severity)
    return [
        AlarmGroup(str(row.day), row.severity, int(row.alarms), int(row.occurrences))
        for row in conn.execute(query)
    ]


@dataclass(frozen=True, slots=True)
class GateDecisions:
    """How the passages at one gate were decided. `gate` is the geography's gate id, or
    the controller's node id for a controller that is not a configured gate."""

    gate: str
    passages: int
    auto_open: int
    held: int
    overridden_open: int
    overridden_hold: int
    #: passages whose reading an officer corrected (any outcome), and of those the ones
    #: opened by the decision taken again, not overridden (not counted in `auto_open`)
    corrected: int = 0
    corrected_open: int = 0
    #: passages opened automatically on an appointment (counted in `auto_open` too)
    appointment_open: int = 0


def gate_decisions(conn: Connection, start: datetime, end: datetime) -> list[GateDecisions]:
    """Per gate, passages in `[start, end)`: opened by the server's own decision, held by
    it (and not overridden), overridden by an officer to open or to hold; corrected by an
    officer (and opened after it); opened on an appointment."""
    p = schema.passages.c
    gate = func.coalesce(p.gate_id, p.gate_node)
    kept = p.override_action.is_(None)
    corrected = p.corrected_at.is_not(None)

    def tally(condition: ColumnElement[bool]) -> ColumnElement[Any]:
        return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)

    query = (
        select(
            gate.label("gate"),
            func.count().label("passages"),
            tally(and_(kept, p.decision == "open", ~corrected)).label("auto_open"),
            tally(and_(kept, p.decision != "open")).label("held"),
            tally(p.override_action == "open").label("overridden_open"),
            tally(p.override_action == "hold").label("overridden_hold"),
            tally(corrected).label("corrected"),
            tally(and_(kept, p.decision == "open", corrected)).label("corrected_open"),
            tally(
                and_(kept, p.decision == "open", ~corrected, p.appointment_id.is_not(None))
            ).label("appointment_open"),
        )
        .where(p.ts >= start, p.ts < end)
        .group_by(gate)
        .order_by(gate)
    )
    return [
        GateDecisions(
            str(row.gate),
            int(row.passages),
            int(row.auto_open),
            int(row.held),
            int(row.overridden_open),
            int(row.overridden_hold),
            int(row.corrected),
            int(row.corrected_open),
            int(row.appointment_open),
        )
        for row in conn.execute(query)
    ]

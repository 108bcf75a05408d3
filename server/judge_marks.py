"""How far the judge has judged each vehicle's messages, in the store, for the gate.

A gate decides an arrival on the alarms of the trip, and those are only as complete as
the judging of the truck's messages. The judge runs beside the ingest (a child
process, or several) and lags it by a moment, and by longer while a judge worker is
being replaced. So after each batch the judge writes, per vehicle, a `Mark`: the
sequence number up to which every message is judged for its trip, its effects applied,
but for the numbers it has not seen — gaps it gave up waiting for, holes in what the
store held when it took the trip up (`write`: `server.judge.Judge`) — and when the
truck's silence would become DEVICE_OFFLINE at the judge's next timer tick
(`server.rules.device.silence_due`), and, once the trip has arrived, that its timers have
run as at its arrival. (The time limit needs no tick: the gate measures it itself.)
The gate compares it with the messages the store holds of that trip up to the passage's
time (`behind`: `server.gates.passages`): one numbered beyond the mark, or stored in a
gap, is not judged yet; an arrival after the silence fell due waits for the judge's next
tick (a judge worker that hangs or is being replaced runs none). It waits for the
judge, or holds the truck with the reason and decides again once the judge has caught
up (docs/gates.md#judged-first).

The timers run on the server's clock: "now" for an arrival decided the first time, and
for one decided again, when the server received its first arrival passage
(`arrived_at`) — waiting at the barrier counts neither as silence nor against the time
limit.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from sqlalchemy import Connection, Engine, and_, func, or_, select

from contract.ids import utc_now
from server.judge_order import JUDGED_CHANNELS
from server.store import schema
from server.store.bulk import BulkInsert
from server.store.database import as_utc
from server.store.writer_lock import BATCH_POLL_S, let_urgent_first, write_transaction

#: Gaps kept in a mark, the newest: a truck that lost more separate runs of numbers than
#: this in one trip has its oldest not looked at by the gate (their rows, when they come,
#: are still judged).
MAX_GAPS: Final = 32

_k = schema.judge_marks.c
_m = schema.edge_messages.c

Gap = tuple[int, int]


@dataclass(frozen=True, slots=True)
class Mark:
    trip_id: str
    #: every message numbered this or below is judged, but for `gaps`
    seq: int
    #: [first, last] runs of numbers below `seq` the judge has not seen
    gaps: tuple[Gap, ...] = ()
    #: after this time the judge's next timer tick raises DEVICE_OFFLINE (silence),
    #: unless a message of the vehicle comes first; None: it would not (raised already)
    due_at: datetime | None = None
    #: the trip's arrival (`arrived_at`) as at which the judge has run its timers
    arrived_at: datetime | None = None


def gaps_of(numbers: Iterable[int], below: int) -> tuple[Gap, ...]:
    """The runs of `numbers` under `below` as [first, last] ranges, at most `MAX_GAPS`
    (the newest)."""
    runs: list[Gap] = []
    for n in sorted(n for n in numbers if n < below):
        if runs and runs[-1][1] == n - 1:
            runs[-1] = (runs[-1][0], n)
        else:
            runs.append((n, n))
    return tuple(runs[-MAX_GAPS:])


def write(engine: Engine, marks: Mapping[str, Mark], at: datetime) -> None:
    """Store each vehicle's mark, in one transaction, after any gate decision that waits
    for SQLite's writer lock. (The driver's own `executemany`: a judged batch holds a
    mark for each of its vehicles, and SQLAlchemy's per-row work would cost about what
    judging the row costs.)"""
    if not marks:
        return
    upsert = _upserts.get(engine.dialect.name)
    if upsert is None:
        upsert = _upserts[engine.dialect.name] = BulkInsert(
            schema.judge_marks, engine.dialect, _COLUMNS, ["vehicle_id"], replace=_COLUMNS[1:]
        )
    params = upsert.params(
        (
            vehicle,
            mark.trip_id,
            mark.seq,
            [list(gap) for gap in mark.gaps],
            at,
            mark.due_at,
            mark.arrived_at,
        )
        for vehicle, mark in marks.items()
    )
    let_urgent_first(engine)
    with write_transaction(engine, BATCH_POLL_S) as conn:
        upsert.execute(conn, params)


_COLUMNS: Final = (
    "vehicle_id",
    "trip_id",
    "seq",
    "missing",
    "judged_at",
    "due_at",
    "arrived_at",
)
_upserts: dict[str, BulkInsert] = {}


def read(conn: Connection, vehicle_id: str) -> Mark | None:
    """The vehicle's mark, if the judge ever wrote one."""
    row = conn.execute(
        select(_k.trip_id, _k.seq, _k.missing, _k.due_at, _k.arrived_at).where(
            _k.vehicle_id == vehicle_id
        )
    ).first()
    if row is None:
        return None
    gaps = tuple((int(a), int(b)) for a, b in row.missing)
    return Mark(row.trip_id, int(row.seq), gaps, as_utc(row.due_at), as_utc(row.arrived_at))


def arrived_at(conn: Connection, trip_id: str) -> datetime | None:
    """When the server received the trip's first arrival passage (its own clock), if it
    has decided one."""
    p = schema.passages.c
    value = conn.execute(
        select(func.min(_m.received_at))
        .select_from(
            schema.passages.join(
                schema.edge_messages, and_(_m.node_id == p.gate_node, _m.seq == p.seq)
            )
        )
        .where(p.trip_id == trip_id, p.phase == "arrival")
    ).scalar()
    return as_utc(value)


def behind(
    conn: Connection,
    vehicle_id: str,
    trip_id: str,
    started_at: datetime,
    until: datetime,
    now: datetime | None = None,
) -> str | None:
    """Why the judging of trip `trip_id` up to `until` (the passage's time) is not
    complete — the judge has not taken the trip up; the store holds a message of the
    vehicle that the rules look at, dated from the trip's start to `until`, beyond the
    judge's mark or in one of its gaps; its timers have not run as at its arrival, or,
    before it has arrived, its silence fell due before `now` (the server's clock) and
    they have not run since — or None when it is."""
    mark = read(conn, vehicle_id)
    if mark is None or mark.trip_id != trip_id:
        return "the judge has not taken the trip up yet"
    of_trip = (
        select(_m.seq)
        .where(_m.node_id == vehicle_id, _m.channel.in_(JUDGED_CHANNELS))
        .where(_m.ts >= started_at, _m.ts <= until)
    )
    newest = conn.execute(
        of_trip.where(_m.seq > mark.seq).order_by(_m.seq.desc()).limit(1)
    ).scalar()
    if newest is not None:
        return f"messages of {vehicle_id} stored up to no. {newest}, judged up to no. {mark.seq}"
    if mark.gaps:
        late = conn.execute(
            of_trip.where(or_(*(_m.seq.between(a, b) for a, b in mark.gaps))).limit(1)
        ).scalar()
        if late is not None:
            return f"message no. {late} of {vehicle_id} came late and is not judged yet"
    arrival = arrived_at(conn, trip_id)
    if arrival is not None:
        if mark.arrived_at is None or mark.arrived_at < arrival:
            return "the judge's timers have not run for the trip as at its arrival"
    elif mark.due_at is not None and mark.due_at < (now or utc_now()):
        return (
            f"the truck has been silent too long since "
            f"{mark.due_at.isoformat(timespec='seconds')} and the judge's timers have not "
            "run since"
        )
    return None

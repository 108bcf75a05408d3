"""How far the judge has judged each vehicle's messages, in the store, for the gate.

A gate decides an arrival on the alarms of the trip, and those are only as complete as
the judging of the truck's messages. The judge runs beside the ingest (a child
process, or several) and lags it by a moment, and by longer while a judge worker is
being replaced. So after each batch the judge writes, per vehicle, the sequence number
up to which every message is judged for its trip in transit, its effects applied
(`write`: `server.judge.Judge`); the gate compares it with the messages the store
holds of that trip (`behind`: `server.gates.passages`) and waits for it, or holds the
truck with the reason and decides again once the judge has caught up
(docs/gates.md#judged-first).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from sqlalchemy import Connection, Engine, select
from sqlalchemy.dialects import postgresql, sqlite

from server.judge_order import JUDGED_CHANNELS
from server.store import schema
from server.store.writer_lock import BATCH_POLL_S, write_transaction

#: A trip the judge has not taken up (it does within a timer tick of its start): its
#: truck's newest messages looked at for one of the trip.
NEWEST_SCANNED = 10_000

_k = schema.judge_marks.c
_m = schema.edge_messages.c


def write(engine: Engine, marks: Mapping[str, tuple[str, int]], at: datetime) -> None:
    """Store each vehicle's mark: vehicle id → (its trip in transit, the sequence number
    up to which its messages are judged). One transaction; it lets a gate decision that
    waits for the writer lock go first (SQLite)."""
    if not marks:
        return
    insert = (postgresql if engine.dialect.name == "postgresql" else sqlite).insert
    stmt = insert(schema.judge_marks)
    stmt = stmt.on_conflict_do_update(
        index_elements=[_k.vehicle_id],
        set_={"trip_id": stmt.excluded.trip_id, "seq": stmt.excluded.seq, "judged_at": at},
    )
    rows = [
        {"vehicle_id": vehicle, "trip_id": trip_id, "seq": seq, "judged_at": at}
        for vehicle, (trip_id, seq) in marks.items()
    ]
    with write_transaction(engine, BATCH_POLL_S) as conn:
        conn.execute(stmt, rows)


def read(conn: Connection, vehicle_id: str) -> tuple[str, int] | None:
    """(trip id, sequence number) of the vehicle's mark, if the judge ever wrote one."""
    row = conn.execute(select(_k.trip_id, _k.seq).where(_k.vehicle_id == vehicle_id)).first()
    return None if row is None else (row.trip_id, int(row.seq))


def behind(conn: Connection, vehicle_id: str, trip_id: str, started_at: datetime) -> str | None:
    """Why the judging of trip `trip_id` is not complete — the store holds a message of
    the vehicle that the rules look at, from the trip's start on, beyond the judge's mark
    for that trip — or None when it is."""
    mark = read(conn, vehicle_id)
    judged = mark[1] if mark is not None and mark[0] == trip_id else None
    if judged is not None:  # what lies beyond the mark: few rows, by the key's index
        rows = select(_m.seq, _m.channel, _m.ts).where(_m.node_id == vehicle_id, _m.seq > judged)
    else:  # not taken up (yet): the newest rows of a truck that may have a long history
        rows = (
            select(_m.seq, _m.channel, _m.ts)
            .where(_m.node_id == vehicle_id)
            .order_by(_m.seq.desc())
            .limit(NEWEST_SCANNED)
        )
    recent = rows.subquery()
    newest = conn.execute(
        select(recent.c.seq)
        .where(recent.c.channel.in_(JUDGED_CHANNELS), recent.c.ts >= started_at)
        .order_by(recent.c.seq.desc())
        .limit(1)
    ).scalar()
    if newest is None:
        return None
    if judged is None:
        return f"the judge has not taken the trip up yet (messages up to no. {newest} stored)"
    return f"messages of {vehicle_id} stored up to no. {newest}, judged up to no. {judged}"

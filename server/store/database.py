"""The store: one interface over SQLite and PostgreSQL (SQLAlchemy Core, synchronous).

The ingest path calls it from a worker thread; the REST API from FastAPI's thread pool.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    Row,
    String,
    and_,
    any_,
    bindparam,
    case,
    create_engine,
    event,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError, OperationalError

from contract.payloads import EdgeMessage, PayloadError, Position, decode_stored
from contract.topics import Kind
from server.store import schema
from server.store.bulk import BulkInsert
from server.store.migrations import migrate
from server.store.trip import Trip, TripHead
from server.store.writer_lock import (
    BATCH_POLL_S,
    BUSY_TIMEOUT_MS,
    WRITE_CHUNK,
    let_urgent_first,
    urgent_waiting,
    write_transaction,
)

log = logging.getLogger(__name__)

TRIP_STATUSES = ("declared", "in_transit", "arrived", "released", "held", "closed")
OPEN_TRIP_STATUSES = ("declared", "in_transit", "arrived")
#: Trip statuses whose declared locks are still on the truck: released and closed free them.
LOCKED_TRIP_STATUSES = ("declared", "in_transit", "arrived", "held")
#: How often the server process checkpoints SQLite's write-ahead log (`checkpoint_forever`).
CHECKPOINT_EVERY_S = 5.0


class StoreError(RuntimeError):
    """The store refused a change; `code` is the REST error code to report."""

    def __init__(self, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.field = field


def as_utc(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; everything stored is UTC."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class IncomingMessage:
    """A validated edge message on its way into the store."""

    channel: str
    message: EdgeMessage
    raw: str
    received_at: datetime
    #: The topic's kind (`truck`/`gate`); None where a message was not taken from a topic.
    kind: Kind | None = None


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _durable_commits(dbapi_conn: Any, _record: Any) -> None:
    """PostgreSQL: a commit returns only once it is flushed to disk, so that what the
    ingest acknowledges to a node survives a power cut (docs/edge-outbox.md). A
    database configured with `synchronous_commit = off` is overridden for our sessions
    (`local`, `on`, `remote_write` and `remote_apply` are all durable locally)."""
    cursor = dbapi_conn.cursor()
    cursor.execute("SHOW synchronous_commit")
    if str(cursor.fetchone()[0]).lower() == "off":
        cursor.execute("SET synchronous_commit TO on")
    cursor.close()
    dbapi_conn.commit()


def _no_checkpoints(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA wal_autocheckpoint=0")
    cursor.close()


class _Repeated(Exception):
    """A batch held a message stored before: write it again, naming the new ones."""


class Store:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._dialect = engine.dialect.name
        self._edge_insert = BulkInsert(
            schema.edge_messages, engine.dialect, EDGE_COLUMNS, ignore_conflicts_on=KEY
        )
        self._position_insert = BulkInsert(schema.positions, engine.dialect, POSITION_COLUMNS)

    @classmethod
    def open(cls, url: str, password: str | None = None, checkpoints: bool = True) -> Store:
        """`checkpoints=False` (SQLite): this process's commits never copy the write-ahead
        log back into the database file (`PRAGMA wal_autocheckpoint=0`); another process
        must (`checkpoint`). SQLite runs that copy inside the commit that finds the log
        over 1,000 pages, and the committer waits for it: a gate decision that drew it
        under a position load took 27 ms more (once in about twenty passages)."""
        parsed = make_url(url)
        if password is not None:
            parsed = parsed.set(password=password)
        if parsed.drivername.startswith("sqlite"):
            if parsed.database and parsed.database != ":memory:":
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(parsed, connect_args={"check_same_thread": False})
            event.listen(engine, "connect", _sqlite_pragmas)
            if not checkpoints:
                event.listen(engine, "connect", _no_checkpoints)
        else:
            engine = create_engine(parsed, pool_pre_ping=True, pool_size=8)
            event.listen(engine, "connect", _durable_commits)
        migrate(engine)
        return cls(engine)

    def close(self) -> None:
        self.engine.dispose()

    def checkpoint(self) -> None:
        """Copy what the write-ahead log holds into the database file, as far as readers
        allow, without waiting for anyone (SQLite's PASSIVE checkpoint); nothing to do on
        PostgreSQL."""
        if self._dialect == "sqlite":
            with self.engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")

    async def checkpoint_forever(self, every_s: float = CHECKPOINT_EVERY_S) -> None:
        """`checkpoint` every `every_s` until cancelled (the server process: its child
        processes leave the log to it), so that the log stays small while only they write."""
        if self._dialect != "sqlite":
            return
        while True:
            await asyncio.sleep(every_s)
            try:
                await asyncio.to_thread(self.checkpoint)
            except OperationalError as err:
                log.warning("SQLite checkpoint failed: %s", err)

    def _insert(self, table: Any) -> Any:
        if self._dialect == "postgresql":
            return postgresql.insert(table)
        return sqlite.insert(table)

    # ---- ingest -------------------------------------------------------------------

    def store_messages(self, batch: Sequence[IncomingMessage]) -> list[IncomingMessage]:
        """Store each (node, seq) once; return the messages that were new, in batch order.

        The rows are converted before any transaction, so that SQLite's single writer
        lock is held only while the driver writes them (`BulkInsert`, the driver's
        `executemany`), in parts of `WRITE_CHUNK` rows. Between parts, a gate decision
        waiting for the lock (`writer_lock.urgent_waiting`) has the batch commit what it
        has written and let the decision go first; the rest follows in a transaction of
        its own. Otherwise the batch is one transaction, one commit. The caller
        acknowledges the batch once all of it is written: a crash in between has the
        broker send it again. A part holding a message stored before (a redelivery after
        a reconnect: rare) inserts fewer rows than it has; that transaction is rolled
        back, and what it and the rest of the batch held is written again with
        RETURNING, which names the new ones."""
        if not batch:
            return []
        unique: dict[tuple[str, int], IncomingMessage] = {}
        for item in batch:
            unique.setdefault((item.message.node_id, item.message.seq), item)
        items = list(unique.values())
        parts = [
            (
                part,
                self._edge_insert.params(_edge_values(m) for m in part),
                self._position_params(part),
            )
            for part in (items[i : i + WRITE_CHUNK] for i in range(0, len(items), WRITE_CHUNK))
        ]
        fresh: list[IncomingMessage] = []
        while parts:
            let_urgent_first(self.engine)
            written = 0
            try:
                with write_transaction(self.engine, BATCH_POLL_S) as conn:
                    for _, edge_params, position_params in parts:
                        if self._edge_insert.execute(conn, edge_params) != len(edge_params):
                            raise _Repeated
                        self._position_insert.execute(conn, position_params)
                        written += 1
                        if written < len(parts) and urgent_waiting(self.engine):
                            break  # commit, and let the gate decision in
            except _Repeated:
                rest = [m for part, _, _ in parts for m in part]
                return fresh + self._store_new_of(
                    {(m.message.node_id, m.message.seq): m for m in rest}
                )
            fresh.extend(m for part, _, _ in parts[:written] for m in part)
            parts = parts[written:]
        return fresh

    def store_message_in(self, conn: Connection, item: IncomingMessage) -> bool:
        """Store one message in the caller's write transaction (which holds SQLite's
        writer lock); False, writing nothing, when its (node, seq) was stored before."""
        if not self._edge_insert.execute(conn, self._edge_insert.params([_edge_values(item)])):
            return False
        self._position_insert.execute(conn, self._position_params([item]))
        return True

    def _store_new_of(
        self, unique: dict[tuple[str, int], IncomingMessage]
    ) -> list[IncomingMessage]:
        rows = [dict(zip(EDGE_COLUMNS, _edge_values(m), strict=True)) for m in unique.values()]
        with self.engine.begin() as conn:
            stmt = (
                self._insert(schema.edge_messages)
                .on_conflict_do_nothing(index_elements=["node_id", "seq"])
                .returning(schema.edge_messages.c.node_id, schema.edge_messages.c.seq)
            )
            inserted = {(r.node_id, r.seq) for r in conn.execute(stmt, rows)}
            fresh = [m for key, m in unique.items() if key in inserted]
            self._position_insert.execute(conn, self._position_params(fresh))
        return fresh

    def _position_params(self, fresh: Sequence[IncomingMessage]) -> list[Any]:
        return self._position_insert.params(
            _position_values(m.message) for m in fresh if m.channel == "position"
        )

    def message_count(self) -> int:
        with self.engine.connect() as conn:
            return int(
                conn.execute(select(func.count()).select_from(schema.edge_messages)).scalar_one()
            )

    # ---- declarations and trips ----------------------------------------------------

    def create_declaration(
        self, body: dict[str, Any], now: datetime, actor: str = "anonymous"
    ) -> Trip:
        """Register a transit declaration and its trip (status `declared`), audited."""
        from server.audit.log import append as audit_append  # server.audit imports the store

        declaration_id = body["declaration_id"]
        trip = {
            "trip_id": declaration_id,
            "declaration_id": declaration_id,
            "vehicle_id": body["vehicle_id"],
            "route_id": body["route_id"],
            "status": "declared",
            "created_at": now,
            "started_at": None,
            "ended_at": None,
            "time_limit_min": body["time_limit_min"],
        }
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    schema.declarations.insert().values(
                        declaration_id=declaration_id,
                        vehicle_id=body["vehicle_id"],
                        body=body,
                        created_at=now,
                        origin_gate=body.get("origin_gate"),
                        destination_gate=body.get("destination_gate"),
                    )
                )
                conn.execute(schema.trips.insert().values(**trip))
                audit_append(  # same transaction: the declaration and its trace, or neither
                    conn, actor, "declaration.create", "declaration", declaration_id, body, now
                )
        except IntegrityError as err:
            raise StoreError(
                "conflict",
                f"declaration {declaration_id} is already registered",
                "declaration_id",
            ) from err
        created = self.get_trip(declaration_id)
        assert created is not None  # inserted in the transaction above
        return created

    def open_trip_for_vehicle(self, vehicle_id: str) -> Trip | None:
        """The vehicle's trip on the road (`in_transit`), else its newest open one: the
        next declaration may be registered before the current trip has arrived."""
        t = schema.trips.c
        with self.engine.connect() as conn:
            row = conn.execute(
                select(schema.trips)
                .where(t.vehicle_id == vehicle_id)
                .where(t.status.in_(OPEN_TRIP_STATUSES))
                .order_by(case((t.status == "in_transit", 0), else_=1), t.created_at.desc())
                .limit(1)
            ).first()
        return _trip(row._mapping) if row else None

    def open_trips_for_vehicles(self, vehicle_ids: Iterable[str]) -> dict[str, Trip]:
        """`open_trip_for_vehicle` of many vehicles in one query."""
        out: dict[str, Trip] = {}
        for row in self._open_trips_of(vehicle_ids, schema.trips):
            out.setdefault(row.vehicle_id, _trip(row._mapping))
        return out

    def open_trip_heads(self, vehicle_ids: Iterable[str]) -> dict[str, TripHead]:
        """The id, status and whether it has started of `open_trip_for_vehicle` of many
        vehicles in one query: the judge asks this once per batch (a batch of a busy
        server holds thousands of trucks), and building whole `Trip`s was half of its
        time per position."""
        t = schema.trips.c
        out: dict[str, TripHead] = {}
        started = t.started_at.is_not(None).label("started")
        for row in self._open_trips_of(vehicle_ids, t.vehicle_id, t.trip_id, t.status, started):
            if row.vehicle_id not in out:
                out[row.vehicle_id] = TripHead(row.trip_id, row.status, bool(row.started))
        return out

    def _open_trips_of(self, vehicle_ids: Iterable[str], *columns: Any) -> Sequence[Row[Any]]:
        """`columns` of the open trips of `vehicle_ids`, by vehicle, each vehicle's trip
        on the road first, then its newest (`open_trip_for_vehicle`'s order)."""
        t = schema.trips.c
        wanted = sorted(set(vehicle_ids))
        with self.engine.connect() as conn:
            return conn.execute(
                select(*columns)
                .where(one_of(t.vehicle_id, wanted, self._dialect))
                .where(t.status.in_(OPEN_TRIP_STATUSES))
                .order_by(
                    t.vehicle_id,
                    case((t.status == "in_transit", 0), else_=1),
                    t.created_at.desc(),
                )
            ).all()

    def open_trips_by_vehicle(self) -> dict[str, Trip]:
        """The open trip of every vehicle that has one (its newest), in one query."""
        t = schema.trips.c
        out: dict[str, Trip] = {}
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(schema.trips)
                .where(t.status.in_(OPEN_TRIP_STATUSES))
                .order_by(t.vehicle_id, t.created_at.desc())
            ).all()
        for row in rows:
            if row.vehicle_id not in out:
                out[row.vehicle_id] = _trip(row._mapping)
        return out

    def start_trip(self, trip_id: str, at: datetime) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(schema.trips)
                .where(schema.trips.c.trip_id == trip_id)
                .where(schema.trips.c.status == "declared")
                .values(status="in_transit", started_at=at)
            )

    def get_trip(self, trip_id: str) -> Trip | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(schema.trips).where(schema.trips.c.trip_id == trip_id)
            ).first()
        return _trip(row._mapping) if row else None

    def list_trips(self, status: str | None = None, limit: int = 500) -> list[Trip]:
        query = select(schema.trips).order_by(schema.trips.c.created_at.desc()).limit(limit)
        if status is not None:
            query = query.where(schema.trips.c.status == status)
        with self.engine.connect() as conn:
            return [_trip(r._mapping) for r in conn.execute(query)]

    def track(
        self, vehicle_id: str, since: datetime | None, until: datetime | None
    ) -> list[dict[str, Any]]:
        """Positions of a vehicle in fix-time order (late replays in their place)."""
        p = schema.positions.c
        query = select(schema.positions).where(p.node_id == vehicle_id).where(p.fix != "none")
        if since is not None:
            query = query.where(p.ts >= since)
        if until is not None:
            query = query.where(p.ts <= until)
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(p.ts, p.seq)).all()
        return [_position(r._mapping) for r in rows]

    def declaration_credit(self, declaration_id: str) -> str | None:
        """The enterprise credit class a declaration was registered with."""
        with self.engine.connect() as conn:
            body = conn.execute(
                select(schema.declarations.c.body).where(
                    schema.declarations.c.declaration_id == declaration_id
                )
            ).scalar_one_or_none()
        if not isinstance(body, dict):
            return None
        credit = body.get("enterprise", {}).get("credit")
        return credit if isinstance(credit, str) else None

    def max_seq(self, node_id: str) -> int:
        """The highest sequence number stored for a node (0 when none)."""
        m = schema.edge_messages.c
        with self.engine.connect() as conn:
            value = conn.execute(select(func.max(m.seq)).where(m.node_id == node_id)).scalar()
        return int(value or 0)

    def node_seqs(self, node_id: str, first: int, last: int) -> list[int]:
        """The sequence numbers stored for a node from `first` to `last` (its key's index)."""
        m = schema.edge_messages.c
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(m.seq).where(m.node_id == node_id, m.seq.between(first, last))
            ).scalars()
            return [int(seq) for seq in rows]

    def last_received_at(self, node_id: str, before: datetime | None = None) -> datetime | None:
        """When the server last received a message of a node (its own clock), if ever
        (`before`: up to that time)."""
        m = schema.edge_messages.c
        query = select(func.max(m.received_at)).where(m.node_id == node_id)
        if before is not None:
            query = query.where(m.received_at <= before)
        with self.engine.connect() as conn:
            value = conn.execute(query).scalar()
        return as_utc(value)

    def heard_after(self, node_id: str, at: datetime) -> tuple[datetime, datetime] | None:
        """When the server first received a message of a node after `at` (its own clock),
        and the message's own time; None if it has not."""
        m = schema.edge_messages.c
        with self.engine.connect() as conn:
            row = conn.execute(
                select(m.received_at, m.ts)
                .where(m.node_id == node_id, m.received_at > at)
                .order_by(m.received_at)
                .limit(1)
            ).first()
        if row is None:
            return None
        return as_utc(row.received_at) or at, as_utc(row.ts) or at

    def node_messages(
        self,
        node_id: str,
        channels: Sequence[str],
        after: tuple[datetime, int],
        upto: tuple[datetime, int] | None = None,
    ) -> Iterator[tuple[tuple[datetime, int], EdgeMessage]]:
        """A node's stored messages after the (ts, seq) key `after`, in (ts, seq) order."""
        m = schema.edge_messages.c
        after_ts, after_seq = after
        query = (
            select(m.channel, m.payload)
            .where(m.node_id == node_id)
            .where(m.channel.in_(channels))
            .where(or_(m.ts > after_ts, and_(m.ts == after_ts, m.seq > after_seq)))
            .order_by(m.ts, m.seq)
        )
        if upto is not None:
            upto_ts, upto_seq = upto
            query = query.where(or_(m.ts < upto_ts, and_(m.ts == upto_ts, m.seq <= upto_seq)))
        with self.engine.connect() as conn:
            for row in conn.execute(query.execution_options(yield_per=2000)):
                try:  # stored after validation: a row that no longer decodes is skipped
                    message = decode_stored(row.channel, row.payload)
                except PayloadError as err:
                    log.error("stored %s message of %s skipped: %s", row.channel, node_id, err)
                    continue
                yield (message.ts, message.seq), message

    def latest_positions(self, not_after: datetime | None = None) -> list[dict[str, Any]]:
        """The newest fix of every vehicle, by fix time; with `not_after` (the server's
        time plus the clock skew the ingest allows), a fix dated later than that never
        counts, so a device clock in the future cannot pin a vehicle's last fix."""
        p = schema.positions.c
        usable = [p.fix != "none"]
        if not_after is not None:
            usable.append(p.ts <= not_after)
        newest = (
            select(p.node_id, func.max(p.ts).label("ts"))
            .where(*usable)
            .group_by(p.node_id)
            .subquery()
        )
        query = (
            select(schema.positions)
            .join(newest, (p.node_id == newest.c.node_id) & (p.ts == newest.c.ts))
            .order_by(p.node_id, p.seq.desc())
        )
        result: dict[str, dict[str, Any]] = {}
        with self.engine.connect() as conn:
            for row in conn.execute(query):
                result.setdefault(row.node_id, _position(row._mapping))
        return list(result.values())


EDGE_COLUMNS = ("node_id", "seq", "channel", "ts", "received_at", "payload")
POSITION_COLUMNS = (
    "node_id", "seq", "ts", "lat", "lon", "alt_m", "speed_kmh", "course_deg", "fix", "sats",
    "hdop", "replayed",
)  # fmt: skip
KEY = ("node_id", "seq")


def one_of(column: Any, values: Sequence[str], dialect: str) -> Any:
    """`column IN values` with the values bound as one parameter, however many: a JSON
    array read by `json_each` (SQLite), an array (PostgreSQL). SQLAlchemy's own IN binds
    and converts each value on every execution — with a batch of 500 trucks, 15 % of the
    judge's time — and SQLite limits the number of parameters of a statement."""
    if dialect == "postgresql":
        return column == any_(bindparam("values", list(values), type_=postgresql.ARRAY(String)))
    items = func.json_each(bindparam("values", json.dumps(list(values)))).table_valued("value")
    return column.in_(select(items.c.value))


def _edge_values(item: IncomingMessage) -> tuple[Any, ...]:
    """An `edge_messages` row, in `EDGE_COLUMNS` order."""
    m = item.message
    return (m.node_id, m.seq, item.channel, m.ts, item.received_at, item.raw)


def _position_values(message: EdgeMessage) -> tuple[Any, ...]:
    """A `positions` row, in `POSITION_COLUMNS` order."""
    assert isinstance(message, Position)
    return (
        message.node_id, message.seq, message.ts, message.lat, message.lon, message.alt_m,
        message.speed_kmh, message.course_deg, message.fix, message.sats, message.hdop,
        message.replayed,
    )  # fmt: skip


def _position(row: Any) -> dict[str, Any]:
    out = dict(row)
    out["ts"] = as_utc(out["ts"])
    return out


def _trip(row: Any) -> Trip:
    out = dict(row)
    for key in ("created_at", "started_at", "ended_at"):
        out[key] = as_utc(out[key])
    return Trip(**out)

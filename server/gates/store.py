"""Gate data in the store: facts for decisions, passages, release records, commands.

Reads are plain connections; every write takes a `Connection` of the caller's
`write_transaction`, so a decision, its trip change, its command, its alarm and its
audit entry commit together or not at all.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    String,
    and_,
    bindparam,
    or_,
    select,
    type_coerce,
    update,
)

from contract.ids import format_ts
from contract.payloads import LockReport, SignedCommand
from server.gates.correction_rows import newest_corrections
from server.gates.decide import SEAL_ALARMS, Decision, ReleaseRecord, TripFacts
from server.rules.lock_auth import report_authentic
from server.store import schema
from server.store.database import as_utc, one_of

#: Trip statuses a gate passage may concern (and `released` while `ended_at` is unset:
#: released by a record after a hold, the truck not yet through the gate).
GATE_TRIP_STATUSES = ("declared", "in_transit", "arrived", "held")
#: Command outcomes of an execution: never replaced by a later answer (`record_result`).
_EXECUTED = ("done", "failed")
#: How many of a vehicle's newest lock reports are read to find each lock's state.
LOCK_REPORTS_SCANNED = 500
#: How many of a lock's reports received before its newest are checked for a higher
#: counter (a replayed old report sent as the newest).
LOCK_COUNTER_WINDOW = 8
#: Trips' gate facts kept between passages (`GateStore.trips_at_gate`).
FACTS_KEPT = 20_000


# The reads of every passage, built once: building a select costs more than SQLite's
# run of it (trips at the bench's gate: 1.9 ms a passage built each time, 0.5 ms once).
_t, _d = schema.trips.c, schema.declarations.c
_GATE: Any = bindparam("gate_id")
_TRIPS_AT_GATE = (
    select(
        _t.trip_id,
        _t.status,
        _t.vehicle_id,
        _t.time_limit_min,
        type_coerce(_t.started_at, String).label("started"),  # as stored
        _t.declaration_id,
    )
    .join(schema.declarations, _d.declaration_id == _t.declaration_id)
    .where(or_(_d.origin_gate == _GATE, _d.destination_gate == _GATE))
    .where(
        or_(
            _t.status.in_(GATE_TRIP_STATUSES),
            and_(_t.status == "released", _t.ended_at.is_(None)),
        )
    )
)
_m = schema.edge_messages.c
_LOCK_REPORTS = (
    select(_m.payload)
    .where(_m.node_id == bindparam("vehicle_id"), _m.channel == "lock")
    # The gateway's own order (seq), not the device clock's: a report dated in the future
    # must not stay the lock's "newest", and a replayed older one (a backlog sent after
    # live reports) must not overtake a newer one.
    .order_by(_m.seq.desc())
    .limit(LOCK_REPORTS_SCANNED)
)
_a = schema.alarms.c
_SEAL_ALARMS = select(_a.type).where(_a.trip_id == bindparam("trip_id"), _a.type.in_(SEAL_ALARMS))
_r = schema.release_records.c
_LATEST_RELEASE = (
    select(_r.release_id, _r.released_at, _r.inspect)
    .where(_r.declaration_id == bindparam("declaration_id"))
    .order_by(_r.id.desc())
    .limit(1)
)

# … and its writes.
_PASSAGE_EXISTS = select(schema.passages.c.passage_id).where(
    schema.passages.c.passage_id == bindparam("passage_id")
)
_INSERT_PASSAGE = schema.passages.insert()
_INSERT_COMMAND = schema.commands.insert()


@dataclass(frozen=True, slots=True)
class PassageQuery:
    gate: str | None = None
    lane: str | None = None
    decision: str | None = None
    since: datetime | None = None
    trip_id: str | None = None
    limit: int = 100
    offset: int = 0


class GateStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._facts: OrderedDict[tuple[str, str, Any], TripFacts] = OrderedDict()
        self._facts_lock = threading.Lock()

    # ---- facts for decisions ----------------------------------------------------------

    @contextmanager
    def reading(self, conn: Connection | None = None) -> Iterator[Connection]:
        """`conn`, or a connection of its own: a decision reads all its facts through
        one connection."""
        if conn is not None:
            yield conn
            return
        with self.engine.connect() as own:
            yield own

    def trips_at_gate(self, gate_id: str, conn: Connection | None = None) -> list[TripFacts]:
        """Open trips whose origin or destination is `gate_id` (without lock, alarm and
        release facts: `enrich` adds those to the few that match).

        A busy gate has hundreds of open trips, and every passage reads them all. A trip's
        facts come from its declaration, which never changes once registered, and from
        its status and start: they are kept (`FACTS_KEPT`) by (trip, status, start as
        stored), and a row whose key is known costs neither its declaration's JSON nor a
        date parsed again (6 ms a passage with 260 open trips at the bench's gate)."""
        with self.reading(conn) as c:
            rows = c.execute(_TRIPS_AT_GATE, {"gate_id": gate_id}).all()
            keys = [(row[0], row[1], row[4]) for row in rows]  # (trip, status, started)
            known = self._facts
            missing = {row[5] for row, key in zip(rows, keys, strict=True) if key not in known}
            bodies: dict[str, Any] = {}
            if missing:
                ids = one_of(_d.declaration_id, sorted(missing), c.dialect.name)
                for row in c.execute(select(_d.declaration_id, _d.body).where(ids)):
                    body = row.body if isinstance(row.body, dict) else json.loads(row.body)
                    bodies[row.declaration_id] = body
        out: list[TripFacts] = []
        with self._facts_lock:
            for row, key in zip(rows, keys, strict=True):
                facts = known.get(key)
                if facts is None:
                    facts = _trip_facts(row, bodies[row.declaration_id])
                    known[key] = facts
                    if len(known) > FACTS_KEPT:
                        known.popitem(last=False)  # the oldest
                if gate_id in (facts.origin_gate, facts.destination_gate):
                    out.append(facts)
        return out

    def lock_look(
        self,
        vehicle_id: str,
        lock_ids: Iterable[str],
        secrets: Mapping[str, bytes],
        conn: Connection | None = None,
    ) -> tuple[dict[str, str], dict[str, str]]:
        """(lock id → state of its newest report from the vehicle; lock id → why its
        reports cannot be trusted). A lock is untrusted, and absent from the first mapping,
        when no secret is configured for it, when its newest report fails its MAC
        (`server.rules.lock_auth`), or when one of its `LOCK_COUNTER_WINDOW` reports
        received before that one carries a higher counter (the newest is a replay of an
        older report): a gate never acts on a state it cannot authenticate."""
        wanted = set(lock_ids)
        untrusted = {
            lock_id: "no secret is configured for it"
            for lock_id in wanted
            if secrets.get(lock_id) is None
        }
        newest: dict[str, LockReport] = {}
        behind: dict[str, int] = {}  # reports looked at behind the newest
        with self.reading(conn) as c:
            for row in c.execute(_LOCK_REPORTS, {"vehicle_id": vehicle_id}):
                report = LockReport.model_validate_json(row.payload)
                lock_id = report.lock_id
                if lock_id not in wanted or lock_id in untrusted:
                    continue
                if not report_authentic(secrets[lock_id], report):
                    if lock_id not in newest:
                        untrusted[lock_id] = "its newest report fails its MAC"
                    continue  # an older forgery: the judge raised it; it hides nothing
                first = newest.setdefault(lock_id, report)
                if first is not report:
                    behind[lock_id] = behind.get(lock_id, 0) + 1
                    if (report.counter or 0) >= (first.counter or 0):
                        untrusted[lock_id] = (
                            f"its newest report (counter {first.counter}) is a replay: "
                            f"counter {report.counter} came before it"
                        )
                if all(
                    lid in untrusted or behind.get(lid, 0) >= LOCK_COUNTER_WINDOW for lid in wanted
                ):
                    break
        states: dict[str, str] = {lid: r.state for lid, r in newest.items() if lid not in untrusted}
        return states, untrusted

    def seal_alarms(self, trip_id: str, conn: Connection | None = None) -> tuple[str, ...]:
        with self.reading(conn) as c:
            return tuple(c.execute(_SEAL_ALARMS, {"trip_id": trip_id}).scalars())

    def latest_release(
        self, declaration_id: str, conn: Connection | None = None
    ) -> ReleaseRecord | None:
        with self.reading(conn) as c:
            row = c.execute(_LATEST_RELEASE, {"declaration_id": declaration_id}).first()
        if row is None:
            return None
        return ReleaseRecord(row.release_id, as_utc(row.released_at), bool(row.inspect))

    def last_fix(self, vehicle_id: str, received_since: datetime) -> dict[str, Any] | None:
        """The vehicle's newest fix (by fix time) among those the server received at or
        after `received_since` (its own clock), with its `received_at`; None when none.
        Freshness is the receive time's: a fix dated in the future, or a device clock
        that runs behind, neither makes an old position fresh nor a new one stale."""
        p, m = schema.positions.c, schema.edge_messages.c
        with self.engine.connect() as conn:
            row = conn.execute(
                select(p.ts, p.lat, p.lon, m.received_at)
                .join(schema.edge_messages, (m.node_id == p.node_id) & (m.seq == p.seq))
                .where(p.node_id == vehicle_id, p.fix != "none")
                .where(m.received_at >= received_since)
                .order_by(p.ts.desc(), p.seq.desc())
                .limit(1)
            ).first()
        if row is None:
            return None
        return {
            "ts": as_utc(row.ts),
            "lat": row.lat,
            "lon": row.lon,
            "received_at": as_utc(row.received_at),
        }

    def declaration(self, declaration_id: str) -> dict[str, Any] | None:
        d = schema.declarations.c
        with self.engine.connect() as conn:
            body = conn.execute(
                select(d.body).where(d.declaration_id == declaration_id)
            ).scalar_one_or_none()
        if body is None:
            return None
        return body if isinstance(body, dict) else dict(json.loads(body))

    # ---- writes (in the caller's transaction) ---------------------------------------

    @staticmethod
    def passage_exists(conn: Connection, passage_id: str) -> bool:
        return conn.execute(_PASSAGE_EXISTS, {"passage_id": passage_id}).first() is not None

    @staticmethod
    def insert_passage(conn: Connection, row: dict[str, Any]) -> None:
        conn.execute(_INSERT_PASSAGE, row)

    @staticmethod
    def insert_command(
        conn: Connection,
        kind: str,
        command: SignedCommand,
        action: str,
        actor: str,
        passage_id: str | None = None,
        trip_id: str | None = None,
    ) -> None:
        conn.execute(
            _INSERT_COMMAND,
            {
                "command_id": command.command_id,
                "kind": kind,
                "node_id": command.node_id,
                "action": action,
                "passage_id": passage_id,
                "trip_id": trip_id,
                "payload": command.to_json().decode("utf-8"),
                "issued_at": command.issued_at,
                "expires_at": command.expires_at,
                "actor": actor,
            },
        )

    @staticmethod
    def set_trip_status(
        conn: Connection,
        trip_id: str,
        from_statuses: Sequence[str],
        status: str,
        started_at: datetime | None = None,
        ended_at: datetime | None = None,
        reopen: bool = False,
    ) -> bool:
        """Move the trip from one of `from_statuses` to `status`; `reopen`: it has not
        ended after all (an officer's hold after an open), its `ended_at` is cleared."""
        t = schema.trips.c
        values: dict[str, Any] = {"status": status}
        if started_at is not None:
            values["started_at"] = started_at
        if ended_at is not None:
            values["ended_at"] = ended_at
        elif reopen:
            values["ended_at"] = None
        changed = conn.execute(
            update(schema.trips)
            .where(t.trip_id == trip_id, t.status.in_(from_statuses))
            .values(**values)
        ).rowcount
        return bool(changed)

    @staticmethod
    def insert_release(conn: Connection, row: dict[str, Any]) -> None:
        conn.execute(schema.release_records.insert().values(**row))

    def record_result(
        self, command_id: str, node_id: str, result: str, detail: str, at: datetime
    ) -> bool:
        """Store a device's answer to a command; False when the command is unknown (or
        was sent to another node).

        A command the broker delivers twice (QoS 1 after a broker crash) is answered
        twice: executed once (`done`/`failed`), then refused as a replayed nonce, and
        the answers may arrive in either order (a resent one after a live one). So an
        execution's outcome is never replaced, and any answer replaces one that is not
        an execution's; every answer stays in `edge_messages`."""
        c = schema.commands.c
        mine = (c.command_id == command_id) & (c.node_id == node_id)
        with self.engine.begin() as conn:
            known = conn.execute(select(c.command_id).where(mine)).first() is not None
            conn.execute(
                update(schema.commands)
                .where(mine, c.result.is_(None) | c.result.not_in(_EXECUTED))
                .values(result=result, result_detail=detail, result_at=at)
            )
        return known

    # ---- reads for the API ------------------------------------------------------------

    def get_passage(self, passage_id: str) -> dict[str, Any] | None:
        p = schema.passages.c
        with self.engine.connect() as conn:
            row = conn.execute(select(schema.passages).where(p.passage_id == passage_id)).first()
        return self._with_results([_passage(row._mapping)])[0] if row is not None else None

    def list_passages(self, query: PassageQuery) -> list[dict[str, Any]]:
        p = schema.passages.c
        stmt = select(schema.passages)
        if query.gate is not None:
            stmt = stmt.where((p.gate_id == query.gate) | (p.gate_node == query.gate))
        if query.lane is not None:
            stmt = stmt.where(p.lane == query.lane)
        if query.decision is not None:
            stmt = stmt.where(p.decision == query.decision)
        if query.since is not None:
            stmt = stmt.where(p.ts >= query.since)
        if query.trip_id is not None:
            stmt = stmt.where(p.trip_id == query.trip_id)
        stmt = stmt.order_by(p.ts.desc(), p.decided_at.desc()).limit(query.limit)
        stmt = stmt.offset(query.offset)
        with self.engine.connect() as conn:
            rows = [_passage(r._mapping) for r in conn.execute(stmt)]
        return self._with_results(rows)

    def _with_results(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        ids = [r["command_id"] for r in rows if r["command_id"]]
        results: dict[str, dict[str, Any]] = {}
        if ids:
            c = schema.commands.c
            with self.engine.connect() as conn:
                for row in conn.execute(
                    select(c.command_id, c.result, c.result_detail, c.result_at).where(
                        c.command_id.in_(ids)
                    )
                ):
                    results[row.command_id] = {
                        "result": row.result,
                        "detail": row.result_detail,
                        "at": format_ts(at) if (at := as_utc(row.result_at)) else None,
                    }
        corrected = [r["passage_id"] for r in rows if r.get("corrected_at")]
        corrections: dict[str, dict[str, Any]] = {}
        if corrected:
            with self.engine.connect() as conn:
                corrections = newest_corrections(conn, corrected)
        for r in rows:
            r["command_result"] = results.get(r["command_id"] or "")
            r["correction"] = corrections.get(r["passage_id"])
        return rows

    def command(self, command_id: str) -> dict[str, Any] | None:
        c = schema.commands.c
        with self.engine.connect() as conn:
            row = conn.execute(select(schema.commands).where(c.command_id == command_id)).first()
        return dict(row._mapping) if row else None


def _passage(row: Any) -> dict[str, Any]:
    out = dict(row)
    for key in ("ts", "decided_at", "override_at", "corrected_at"):
        out[key] = as_utc(out[key])
    return out


def decision_row(decision: Decision) -> dict[str, Any]:
    return {
        "trip_id": decision.trip_id,
        "phase": decision.phase,
        "decision": decision.action,
        "reasons": decision.reason_texts,
        "reason_codes": decision.reason_codes,
        "appointment_id": decision.appointment_id,
    }


def _stored_time(value: Any) -> datetime | None:
    """A DATETIME as `type_coerce(…, String)` hands it back: SQLite's text, or the
    driver's own datetime (PostgreSQL)."""
    if value is None or isinstance(value, datetime):
        return as_utc(value)
    return as_utc(datetime.fromisoformat(str(value)))


def _trip_facts(row: Any, body: dict[str, Any]) -> TripFacts:
    return TripFacts(
        trip_id=row.trip_id,
        status=row.status,
        vehicle_id=row.vehicle_id,
        plate=str(body.get("plate", "")),
        containers=tuple(body.get("containers", ())),
        lock_ids=tuple(body.get("lock_ids", ())),
        origin_gate=str(body.get("origin_gate")),
        destination_gate=str(body.get("destination_gate")),
        credit=str(body.get("enterprise", {}).get("credit", "")),
        time_limit_min=int(row.time_limit_min),
        started_at=_stored_time(row.started),
    )

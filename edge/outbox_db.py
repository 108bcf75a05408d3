"""The SQLite rows of a durable outbox: what the truck agent's outbox (`edge.outbox`, one
node per file) and the JT/T 808 gateway's store (`edge.jt808.store`, many nodes per file)
share.

Both keep unacknowledged messages in a table `outbox` with the columns `id` (the order
messages are sent in), `topic`, `payload` (compact UTF-8 JSON with `node_id` and `seq`
set), `retain`, `created` and `sent` (wall-clock time of the broker's PUBACK, NULL before
it), in a WAL file fsynced at every commit (docs/edge-outbox.md). The functions here run
inside the caller's transaction (`Transaction`) and keep no state.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypedDict, Unpack

from contract.limits import LARGEST_PAYLOAD_BYTES

#: Largest payload accepted: the contract's largest (contract/limits.py), which the
#: broker's `max_packet_size` leaves room for; a message the broker refuses would block
#: the outbox behind it forever (one over its channel's own limit is refused by the
#: server and acknowledged, so it does not block).
MAX_MESSAGE_BYTES: Final = LARGEST_PAYLOAD_BYTES
#: Ids per statement of an `IN (…)` list (SQLite's default limit of variables is 999).
ID_CHUNK: Final = 500
#: The largest id (no upper bound).
NO_LIMIT: Final = 2**63 - 1


class PendingFilter(TypedDict, total=False):
    """Which of the unacknowledged messages `pending` returns (every key optional)."""

    #: Only those with `after_id < id` (default 0).
    after_id: int
    #: Only those with `id <= up_to_id` (default: no bound).
    up_to_id: int | None
    #: Only those the broker has not taken yet (no PUBACK).
    unsent_only: bool
    #: Only those the broker took before that wall-clock time.
    sent_before: float | None
    #: Only that node's.
    node_id: str | None


class OutboxError(RuntimeError):
    """The outbox database cannot be used (wrong node, corrupt, unwritable)."""


class OutboxFullError(OutboxError):
    """A message was refused because the outbox reached its size or disk limit."""


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """One stored message. In a truck agent's outbox `id` equals the payload's `seq`."""

    id: int
    topic: str
    payload: bytes
    retain: bool
    keep: bool
    created: float
    #: Wall-clock time of the broker's PUBACK (None: not sent yet); the message stays
    #: until the server acknowledges it.
    sent: float | None = None
    #: The node the message belongs to ("" in a one-node outbox: its own).
    node_id: str = ""

    @property
    def seq(self) -> int:
        return self.id


@dataclass(frozen=True, slots=True)
class Removal:
    """What a removal took: messages, payload bytes, and the latest PUBACK time among
    them (None if none had one)."""

    removed: int = 0
    freed: int = 0
    newest_sent: float | None = None


def open_wal(db: sqlite3.Connection, path: Path) -> None:
    """WAL journal, fsynced at every commit (`synchronous=FULL`, docs/edge-outbox.md)."""
    mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        raise OutboxError(f"outbox {path}: WAL journal not available (got {mode})")
    db.execute("PRAGMA synchronous=FULL")


def create_schema(db: sqlite3.Connection, schema: str) -> None:
    """Run each statement of `schema` (inside the caller's transaction)."""
    for statement in schema.split(";"):
        if statement.strip():
            db.execute(statement)


def encode(topic: str, payload: dict[str, Any], node_id: str, seq: int) -> bytes:
    """The stored form of a message: `node_id` and `seq` set in `payload`, compact JSON.

    Raises `OutboxError` when it is larger than `MAX_MESSAGE_BYTES`, and `TypeError` or
    `ValueError` when it is not JSON (NaN included)."""
    payload["node_id"] = node_id
    payload["seq"] = seq
    blob = json.dumps(payload, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode(
        "utf-8"
    )
    if len(blob) > MAX_MESSAGE_BYTES:
        raise OutboxError(
            f"message for {topic} is {len(blob)} bytes, more than {MAX_MESSAGE_BYTES}: "
            "refused so it cannot block the outbox"
        )
    return blob


def totals(db: sqlite3.Connection) -> tuple[int, int]:
    """(payload bytes, messages) held: the truth the in-memory counters are read from."""
    row = db.execute("SELECT COALESCE(SUM(length(payload)), 0), COUNT(*) FROM outbox").fetchone()
    return int(row[0]), int(row[1])


def select_pending(
    db: sqlite3.Connection, limit: int, *, keep: str, node: str, **filters: Unpack[PendingFilter]
) -> list[OutboxItem]:
    """The oldest messages `filters` leave, in id order; `keep` and `node` are the SQL
    expressions of their `keep` flag and node id (a `node_id` filter needs a table with
    a `node_id` column)."""
    up_to_id = filters.get("up_to_id")
    where = "id > ? AND id <= ?"
    params: list[Any] = [filters.get("after_id", 0), NO_LIMIT if up_to_id is None else up_to_id]
    if filters.get("unsent_only", False):
        where += " AND sent IS NULL"
    sent_before = filters.get("sent_before")
    if sent_before is not None:
        where += " AND sent < ?"
        params.append(sent_before)
    node_id = filters.get("node_id")
    if node_id is not None:
        where += " AND node_id = ?"
        params.append(node_id)
    rows = db.execute(
        f"SELECT id, topic, payload, retain, {keep}, created, sent, {node} FROM outbox "
        f"WHERE {where} ORDER BY id LIMIT ?",
        (*params, limit),
    ).fetchall()
    return [
        OutboxItem(
            id=int(r[0]),
            topic=str(r[1]),
            payload=bytes(r[2]),
            retain=bool(r[3]),
            keep=bool(r[4]),
            created=float(r[5]),
            sent=None if r[6] is None else float(r[6]),
            node_id=str(r[7]),
        )
        for r in rows
    ]


def mark_sent(db: sqlite3.Connection, ids: Sequence[int], when: float) -> int:
    """Note the broker's PUBACK at `when` for these messages; returns how many were there."""
    marked = 0
    for start in range(0, len(ids), ID_CHUNK):
        chunk = ids[start : start + ID_CHUNK]
        marked += db.execute(
            f"UPDATE outbox SET sent=? WHERE id IN ({','.join('?' * len(chunk))})", (when, *chunk)
        ).rowcount
    return marked


def id_clauses(ids: Sequence[int]) -> list[tuple[str, list[Any]]]:
    """`remove` clauses for these ids."""
    return [
        (f"id IN ({','.join('?' * len(chunk))})", list(chunk))
        for chunk in (ids[i : i + ID_CHUNK] for i in range(0, len(ids), ID_CHUNK))
    ]


def remove(db: sqlite3.Connection, clauses: Sequence[tuple[str, Sequence[Any]]]) -> Removal:
    """Delete the messages each `(where, params)` clause names."""
    removed = freed = 0
    newest: float | None = None
    for where, params in clauses:
        rows = db.execute(
            f"DELETE FROM outbox WHERE {where} RETURNING length(payload), sent", params
        ).fetchall()
        removed += len(rows)
        freed += sum(int(r[0]) for r in rows)
        for row in rows:
            if row[1] is not None:
                newest = float(row[1]) if newest is None else max(newest, float(row[1]))
    return Removal(removed, freed, newest)


class Transaction:
    """BEGIN IMMEDIATE … COMMIT, rolled back on any error."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self._db.execute("COMMIT")
        elif self._db.in_transaction:  # SQLite rolls back by itself on SQLITE_FULL
            self._db.execute("ROLLBACK")

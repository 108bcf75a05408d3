"""The gateway's durable outbox: every node's messages and seq counter in one SQLite file.

A truck agent keeps one outbox file per node (`edge.outbox`); a JT/T 808 gateway speaks
for thousands of nodes at once, and a file (three descriptors and a page cache) per node
would not fit one process. So this store keeps the same semantics for many nodes in one
file: a message's `seq` is taken from its node's counter in the transaction that stores
it (strictly increasing per node, never reused, kept across restarts); the broker's
PUBACK only marks it `sent`; the server's acknowledgement (`ack_ranges`) removes it.

Writes from many connections are committed together (`GroupCommitter`: one fsync per
few milliseconds, not per report), and a connection answers its device (0x8001) only
after the commit that holds its report: from then on the report survives a gateway
crash and a broker crash, and the device may forget it.

A device that did not receive the answer (the gateway died between the commit and the
answer, or the connection broke) sends the report again. Each location report leaves a
digest (`seen`) in the same transaction, so a report sent again is answered and not
stored twice: the server would see a lock's report counter twice (a replay alarm) and a
position twice. Digests are kept `dedupe_window_s`.

When the stored messages reach `max_bytes`, new reports are refused (`StoreFullError`):
the device is answered "failed" and keeps them (a JT/T 808 terminal keeps unanswered
reports and sends them again, in a blind-area batch 0x0704), so nothing is thinned.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, TypeVar, Unpack

from contract.ids import is_node_id
from edge import outbox_db
from edge.outbox_db import OutboxError, OutboxItem, PendingFilter, Transaction

log = logging.getLogger(__name__)

#: How long a stored report's digest is kept to recognise the device sending it again.
DEFAULT_DEDUPE_WINDOW_S: Final = 6 * 3600.0

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS nodes (node_id TEXT PRIMARY KEY, last_seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,   -- the order messages were stored in
    node_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,                  -- UTF-8 JSON with node_id and seq set
    retain INTEGER NOT NULL,
    created REAL NOT NULL,                  -- wall-clock time of the commit
    sent REAL                               -- wall-clock time of the broker's PUBACK
);
CREATE UNIQUE INDEX IF NOT EXISTS outbox_node_seq ON outbox (node_id, seq);
CREATE TABLE IF NOT EXISTS seen (
    digest INTEGER PRIMARY KEY,             -- 64 bits of SHA-256 over phone and report
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS seen_created ON seen (created);
"""

#: (topic, payload without node_id/seq, retain)
Message = tuple[str, dict[str, Any], bool]
T = TypeVar("T")


class StoreFullError(OutboxError):
    """The store holds `max_bytes` of messages: the device must keep its report."""


@dataclass(frozen=True, slots=True)
class Item:
    """Messages stored together, or not at all: those of one device report (its
    `digest` recognises it when sent again; None for the gateway's own messages)."""

    messages: Sequence[Message]
    digest: int | None = None


@dataclass(slots=True)
class Stored:
    """What became of a request: the seqs given, and how many items were already stored."""

    seqs: list[int] = field(default_factory=list)
    duplicates: int = 0


class GatewayStore:
    """Messages of many nodes not yet acknowledged by the server, with their seq counters.

    Use it from one event loop; every method commits before it returns.
    """

    def __init__(
        self,
        path: Path,
        gateway_id: str,
        max_bytes: int,
        *,
        dedupe_window_s: float = DEFAULT_DEDUPE_WINDOW_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not is_node_id(gateway_id):
            raise OutboxError(f"gateway id {gateway_id!r} must match [A-Za-z0-9_-]{{1,64}}")
        self.path = path
        self.gateway_id = gateway_id
        self.max_bytes = max_bytes
        self.dedupe_window_s = dedupe_window_s
        self._clock = clock
        self._listeners: list[Callable[[], None]] = []
        path.parent.mkdir(parents=True, exist_ok=True)
        # Every write runs on one thread of its own, so that the event loop serves the
        # devices while a commit waits for the disk (fsync); reads use a second
        # connection on the loop's thread (WAL: readers never wait for the writer).
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="jt808-store")
        try:
            self._db = self._call(self._open)
            self._read = sqlite3.connect(path, isolation_level=None, timeout=30.0)
        except sqlite3.DatabaseError as err:
            self._writer.shutdown()
            raise OutboxError(f"gateway store {path} cannot be opened: {err}") from err
        self._last_seq: dict[str, int] = dict(
            self._read.execute("SELECT node_id, last_seq FROM nodes").fetchall()
        )
        self._bytes, self._count = outbox_db.totals(self._read)
        log.info(
            "gateway store %s: %d messages (%d bytes) of %d nodes waiting",
            path,
            self._count,
            self._bytes,
            len(self._last_seq),
        )

    def _call(self, function: Callable[..., T], *args: Any) -> T:
        """Run `function` on the writer's thread and wait for it (from any thread)."""
        return self._writer.submit(function, *args).result()

    async def _run(self, function: Callable[..., T], *args: Any) -> T:
        """Run `function` on the writer's thread without blocking the event loop."""
        return await asyncio.wrap_future(self._writer.submit(function, *args))

    def _open(self) -> sqlite3.Connection:
        self._db = sqlite3.connect(self.path, isolation_level=None, timeout=30.0)
        self._setup()
        return self._db

    def _setup(self) -> None:
        db = self._db
        outbox_db.open_wal(db, self.path)
        with self._transaction():
            outbox_db.create_schema(db, _SCHEMA)
            row = db.execute("SELECT value FROM meta WHERE key='gateway_id'").fetchone()
            if row is None:
                db.execute("INSERT INTO meta VALUES ('gateway_id', ?)", (self.gateway_id,))
            elif row[0] != self.gateway_id:
                raise OutboxError(
                    f"gateway store {self.path} belongs to gateway {row[0]}, not "
                    f"{self.gateway_id}: give each gateway its own store"
                )

    def close(self) -> None:
        self._read.close()
        self._call(self._db.close)
        self._writer.shutdown()

    def add_listener(self, callback: Callable[[], None]) -> None:
        """Call `callback()` (on the caller's thread) after each commit that stored
        something (wakes the sender)."""
        self._listeners.append(callback)

    def _notify(self, results: Sequence[Stored | OutboxError]) -> None:
        if any(isinstance(r, Stored) and r.seqs for r in results):
            for callback in self._listeners:
                callback()

    # -- writing ----------------------------------------------------------------------

    def last_seq(self, node_id: str) -> int:
        """The highest seq handed out for `node_id` (0 before the first)."""
        return self._last_seq.get(node_id, 0)

    def store(self, node_id: str, items: Sequence[Item]) -> Stored:
        """Store one request at once (one transaction); see `store_many`."""
        result = self.store_many([(node_id, items)])[0]
        if isinstance(result, BaseException):
            raise result
        return result

    def store_many(
        self, requests: Sequence[tuple[str, Sequence[Item]]]
    ) -> list[Stored | OutboxError]:
        """Store several requests in ONE transaction (one fsync); see `_store_many`."""
        results = self._call(self._store_many, requests)
        self._notify(results)
        return results

    async def commit(
        self, requests: Sequence[tuple[str, Sequence[Item]]]
    ) -> list[Stored | OutboxError]:
        """`store_many` without blocking the event loop."""
        results = await self._run(self._store_many, requests)
        self._notify(results)
        return results

    def _store_many(
        self, requests: Sequence[tuple[str, Sequence[Item]]]
    ) -> list[Stored | OutboxError]:
        """Store several requests in ONE transaction (one fsync), on the writer's thread.

        Each request gets its `Stored` (items already stored are counted, not stored
        again) or the `OutboxError` that refused it (too large, store full); a refused
        request stores nothing and uses no seq. A failing disk fails every request.
        """
        now = self._clock()
        results: list[Stored | OutboxError] = []
        seqs: dict[str, int] = {}  # the nodes this transaction moves on
        added_bytes = added_count = 0
        try:
            with self._transaction():
                for node_id, items in requests:
                    try:
                        stored, size = self._store_request(node_id, items, seqs, now)
                    except OutboxError as err:
                        results.append(err)
                        continue
                    added_bytes += size
                    added_count += len(stored.seqs)
                    results.append(stored)
                self._db.executemany(
                    "INSERT INTO nodes VALUES (?, ?) ON CONFLICT (node_id) "
                    "DO UPDATE SET last_seq = excluded.last_seq",
                    list(seqs.items()),
                )
        except sqlite3.DatabaseError as err:
            self._bytes, self._count = outbox_db.totals(self._db)
            failure = OutboxError(f"gateway store {self.path}: {err}")
            return [failure for _ in requests]
        self._last_seq.update(seqs)
        self._bytes += added_bytes
        self._count += added_count
        return results

    def _store_request(
        self, node_id: str, items: Sequence[Item], seqs: dict[str, int], now: float
    ) -> tuple[Stored, int]:
        """Inside the transaction: one request's rows, or an error with nothing written."""
        if not is_node_id(node_id):
            raise OutboxError(f"node id {node_id!r} must match [A-Za-z0-9_-]{{1,64}}")
        stored = Stored()
        rows: list[tuple[Any, ...]] = []
        digests: list[int] = []
        last = seqs.get(node_id, self._last_seq.get(node_id, 0))
        size = 0
        for item in items:
            if item.digest is not None:
                if (
                    item.digest in digests
                    or self._db.execute(
                        "SELECT 1 FROM seen WHERE digest=?", (item.digest,)
                    ).fetchone()
                ):
                    stored.duplicates += 1
                    continue
                digests.append(item.digest)
            for topic, payload, retain in item.messages:
                last += 1
                try:
                    blob = outbox_db.encode(topic, payload, node_id, last)
                except (TypeError, ValueError) as err:
                    raise OutboxError(f"message for {topic} is not valid JSON: {err}") from err
                size += len(blob)
                rows.append((node_id, last, topic, blob, int(retain), now))
                stored.seqs.append(last)
        if rows and self._bytes + size > self.max_bytes:
            raise StoreFullError(
                f"gateway store {self.path} is full ({self._bytes} of {self.max_bytes} "
                "bytes): the device keeps its report and sends it again"
            )
        self._db.executemany(
            "INSERT INTO outbox (node_id, seq, topic, payload, retain, created) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            rows,
        )
        self._db.executemany("INSERT INTO seen VALUES (?, ?)", [(d, now) for d in digests])
        seqs[node_id] = last
        return stored, size

    def prune_seen(self) -> int:
        """Forget report digests older than `dedupe_window_s`; returns how many went."""
        return self._call(self._prune_seen)

    def _prune_seen(self) -> int:
        with self._transaction():
            cursor = self._db.execute(
                "DELETE FROM seen WHERE created < ?", (self._clock() - self.dedupe_window_s,)
            )
        return cursor.rowcount

    # -- reading and acknowledging -------------------------------------------------------

    def pending(self, limit: int, **filters: Unpack[PendingFilter]) -> list[OutboxItem]:
        """Oldest unacknowledged messages `filters` leave, in store order (for each node,
        seq order)."""
        # Nothing here is thinned: every message is kept (`keep`).
        return outbox_db.select_pending(self._read, limit, keep="1", node="node_id", **filters)

    def max_id(self) -> int:
        """The newest message's store id (0 when empty)."""
        row = self._read.execute("SELECT MAX(id) FROM outbox").fetchone()
        return int(row[0] or 0)

    def mark_sent(self, item_ids: Iterable[int], at: float | None = None) -> int:
        """Note the broker's PUBACK for these messages (kept until the server's ack)."""
        return self._call(self._mark_sent, [int(i) for i in item_ids], at)

    def mark_sent_later(self, item_ids: Iterable[int]) -> None:
        """`mark_sent`, queued on the writer's thread (before any later write)."""
        self._writer.submit(self._mark_sent, [int(i) for i in item_ids], self._clock())

    def _mark_sent(self, ids: list[int], at: float | None) -> int:
        if not ids:
            return 0
        with self._transaction():
            return outbox_db.mark_sent(self._db, ids, self._clock() if at is None else at)

    def ack_ranges(
        self, node_id: str, ranges: Iterable[tuple[int, int]]
    ) -> tuple[int, float | None]:
        """Remove `node_id`'s messages the server acknowledged (inclusive seq ranges).

        Returns how many went and the latest PUBACK time among them (None if none had one).
        """
        return self._call(self._ack_ranges, node_id, list(ranges))

    async def ack_ranges_async(
        self, node_id: str, ranges: Iterable[tuple[int, int]]
    ) -> tuple[int, float | None]:
        """`ack_ranges` without blocking the event loop."""
        return await self._run(self._ack_ranges, node_id, list(ranges))

    def _ack_ranges(self, node_id: str, ranges: list[tuple[int, int]]) -> tuple[int, float | None]:
        clauses = [
            ("node_id = ? AND seq BETWEEN ? AND ?", (node_id, int(first), int(last)))
            for first, last in ranges
        ]
        with self._transaction():
            removal = outbox_db.remove(self._db, clauses)
        self._bytes -= removal.freed
        self._count -= removal.removed
        return removal.removed, removal.newest_sent

    def counts(self) -> tuple[int, int]:
        """(messages, payload bytes) held."""
        return self._count, self._bytes

    def _transaction(self) -> Transaction:
        return Transaction(self._db)


class GroupCommitter:
    """Commits the requests of many connections together: one transaction (one fsync)
    every `window_s` at most, or as soon as `max_batch` requests wait."""

    def __init__(self, store: GatewayStore, window_s: float = 0.005, max_batch: int = 1024):
        self.store = store
        self.window_s = window_s
        self.max_batch = max_batch
        self._queue: list[tuple[str, Sequence[Item], asyncio.Future[Stored]]] = []
        self._committing: list[tuple[str, Sequence[Item], asyncio.Future[Stored]]] = []
        self._wake = asyncio.Event()
        self.commits = 0

    def enqueue(self, node_id: str, items: Sequence[Item]) -> asyncio.Future[Stored]:
        """Queue `items` for `node_id` now (requests are stored in the order queued);
        the future ends with the commit (or `OutboxError`: nothing of them stored)."""
        future: asyncio.Future[Stored] = asyncio.get_running_loop().create_future()
        self._queue.append((node_id, items, future))
        self._wake.set()
        return future

    async def submit(self, node_id: str, items: Sequence[Item]) -> Stored:
        """Store `items` for `node_id`; returns once they are committed (or raises
        `OutboxError`, `StoreFullError`: nothing of them stored)."""
        return await self.enqueue(node_id, items)

    async def run(self) -> None:
        """Commit what waits; while a commit waits for the disk, the next batch gathers."""
        try:
            while True:
                await self._wake.wait()
                if self.window_s and len(self._queue) < self.max_batch:
                    await asyncio.sleep(self.window_s)
                self._wake.clear()
                batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch :]
                if self._queue:
                    self._wake.set()
                await self._commit(batch)
        finally:
            # Not answered "stored": the devices are answered failed and keep them (a
            # batch cancelled mid-commit may be committed: a resend is recognised).
            for _, _, future in self._queue + self._committing:
                if not future.done():
                    future.set_exception(OutboxError("the gateway is stopping"))

    async def _commit(
        self, batch: list[tuple[str, Sequence[Item], asyncio.Future[Stored]]]
    ) -> None:
        live = [(node, items, future) for node, items, future in batch if not future.done()]
        if not live:
            return
        self._committing = live
        results = await self.store.commit([(node, items) for node, items, _ in live])
        self._committing = []
        self.commits += 1
        for (_, _, future), result in zip(live, results, strict=True):
            if future.done():
                continue
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)

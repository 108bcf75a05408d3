"""Durable outbox: every edge message is on disk before it is published.

One SQLite database per node (WAL journal, `synchronous=FULL`) holds the messages
not yet acknowledged by the server and the node's sequence counter. The broker's
PUBACK only marks a message `sent`; the server's acknowledgement (`ack_ranges`, after
the server's own commit) removes it (docs/edge-outbox.md#server-acknowledgement). A message's `seq`
is assigned in the same transaction that stores it, so a committed message and its
seq survive a power cut together and a seq is never handed out twice.

The message id *is* its seq: ids (and seqs) only grow. Seqs are strictly increasing
but not contiguous: `reserve_seq()` hands out seqs for payloads that do not go
through the outbox (the last will, `online`, `stopped`), and thinning deletes old
positions when the outbox is full. Both are recorded (table `reserved`, counter
`thinned_total`) so every gap can be explained. See docs/edge-outbox.md.

The outbox's own state (`ok` → `thinning` → `full` and back) is kept in the file
too, and each change is handed once to the state listeners after its transaction
(the agents publish it as a `health` message of device `outbox`).
"""

from __future__ import annotations

import logging
import shutil
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal, Unpack

from contract.ids import is_node_id
from contract.topics import TopicError
from contract.topics import parse as parse_topic
from edge import outbox_db
from edge.outbox_db import MAX_MESSAGE_BYTES as MAX_MESSAGE_BYTES
from edge.outbox_db import OutboxError as OutboxError
from edge.outbox_db import OutboxFullError as OutboxFullError
from edge.outbox_db import OutboxItem as OutboxItem
from edge.outbox_db import PendingFilter, Transaction
from edge.outbox_settings import OutboxSettings

log = logging.getLogger(__name__)

#: Channels whose old messages may be thinned when the outbox is full. Everything
#: else (lock events, passages, command results, health, availability) is kept.
THINNABLE_CHANNELS: Final = frozenset({"position"})
#: A drained outbox returns its free pages to the disk once this many are free.
VACUUM_FREE_PAGES: Final = 1024
#: How many reservations are kept for explaining seq gaps.
RESERVED_KEEP: Final = 10_000

OutboxState = Literal["ok", "thinning", "full"]
OUTBOX_STATES: Final[tuple[OutboxState, ...]] = ("ok", "thinning", "full")
#: Called once per change of state, after the change was committed: (state, reason).
StateListener = Callable[[OutboxState, str], None]

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY,          -- the message's seq
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,           -- UTF-8 JSON with node_id and seq set
    retain INTEGER NOT NULL,
    keep INTEGER NOT NULL,           -- 1: never thinned (evidence)
    created REAL NOT NULL,           -- wall-clock time of enqueue, seconds
    sent REAL                        -- wall-clock time of the broker's PUBACK (NULL: not yet)
);
CREATE INDEX IF NOT EXISTS outbox_thinnable ON outbox (keep, id);
CREATE TABLE IF NOT EXISTS reserved (
    seq INTEGER PRIMARY KEY,
    purpose TEXT NOT NULL,
    created REAL NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class OutboxStats:
    """What the outbox holds and whether it is healthy."""

    count: int
    bytes: int
    oldest_age_s: float | None
    state: OutboxState
    max_bytes: int
    free_disk_bytes: int
    last_seq: int
    thinned_total: int
    refused_total: int
    #: Of `count`, the messages the broker took (PUBACK) that wait for the server's ack.
    sent: int = 0


def _is_thinnable(topic: str) -> bool:
    try:
        return parse_topic(topic).channel in THINNABLE_CHANNELS
    except TopicError:
        return False


class Outbox:
    """Messages of one node not yet acknowledged by the server, with its seq counter.

    Not thread-safe; use it from one event loop. Every method commits before it
    returns (one fsync per call, batched for `ack_many` and `enqueue_many`).
    """

    def __init__(
        self,
        path: Path,
        node_id: str,
        max_bytes: int,
        *,
        min_free_disk_bytes: int = 64 * 1024 * 1024,
        low_water: float = 0.9,
        recover_below: float = 0.5,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not is_node_id(node_id):
            raise OutboxError(f"node id {node_id!r} must match [A-Za-z0-9_-]{{1,64}}")
        if max_bytes < 4096:
            raise OutboxError(f"outbox max_bytes {max_bytes} is too small (at least 4096)")
        self.path = path
        self.node_id = node_id
        self.max_bytes = max_bytes
        self.min_free_disk_bytes = min_free_disk_bytes
        self.low_water = low_water
        self.recover_below = recover_below
        self._clock = clock
        self._listeners: list[Callable[[], None]] = []
        self._state_listeners: list[StateListener] = []
        self._state: OutboxState = "ok"
        #: The state last handed to the state listeners (and stored in the file).
        self._reported: OutboxState = "ok"
        self._state_reason = ""
        #: The latest PUBACK time among the messages the last removal took.
        self.newest_acked_sent: float | None = None
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(path, isolation_level=None, timeout=30.0)
            self._setup()
        except sqlite3.DatabaseError as err:
            raise OutboxError(f"outbox {path} cannot be opened: {err}") from err
        self._bytes, self._count = outbox_db.totals(self._db)
        self._load_state()
        log.info(
            "outbox %s for node %s: %d messages (%d bytes) waiting, last seq %d, state %s",
            path,
            node_id,
            self._count,
            self._bytes,
            self.last_seq(),
            self._state,
        )

    @classmethod
    def from_settings(cls, settings: OutboxSettings, node_id: str) -> Outbox:
        """Open the outbox described by an agent's `outbox:` config block."""
        return cls(
            settings.path,
            node_id,
            settings.max_bytes,
            min_free_disk_bytes=settings.min_free_disk_bytes,
        )

    def _load_state(self) -> None:
        """The state reported before a restart: a full outbox stays full across power cuts."""
        row = self._db.execute("SELECT value FROM meta WHERE key='state'").fetchone()
        stored = str(row[0]) if row is not None else "ok"
        for state in OUTBOX_STATES:
            if state == stored:
                self._state = self._reported = state
        if self._state != "ok" and self._roomy(0):
            # Drained before the restart, but the change was not reported yet.
            self._set_state("ok", "outbox has room again")

    # -- setup -----------------------------------------------------------------

    def _setup(self) -> None:
        db = self._db
        # auto_vacuum must be chosen before the first table exists.
        db.execute("PRAGMA auto_vacuum=INCREMENTAL")
        outbox_db.open_wal(db, self.path)
        db.execute("BEGIN IMMEDIATE")
        try:
            outbox_db.create_schema(db, _SCHEMA)
            columns = {str(row[1]) for row in db.execute("PRAGMA table_info(outbox)")}
            if "sent" not in columns:  # an outbox file from before the server's acks
                db.execute("ALTER TABLE outbox ADD COLUMN sent REAL")
            row = db.execute("SELECT value FROM meta WHERE key='node_id'").fetchone()
            if row is None:
                db.execute("INSERT INTO meta VALUES ('node_id', ?)", (self.node_id,))
                db.execute("INSERT INTO meta VALUES ('last_seq', '0')")
                db.execute("INSERT INTO meta VALUES ('thinned_total', '0')")
                db.execute("INSERT INTO meta VALUES ('refused_total', '0')")
            elif row[0] != self.node_id:
                raise OutboxError(
                    f"outbox {self.path} belongs to node {row[0]}, not {self.node_id}: "
                    "give each node its own outbox file"
                )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def close(self) -> None:
        self._db.close()

    # -- listeners -------------------------------------------------------------

    def add_listener(self, callback: Callable[[], None]) -> None:
        """Call `callback()` after each enqueue (the MQTT link wakes its sender)."""
        self._listeners.append(callback)

    def _notify(self) -> None:
        for callback in self._listeners:
            callback()

    def add_state_listener(self, callback: StateListener) -> None:
        """Call `callback(state, reason)` once per change of `stats().state`.

        Called after the change's transaction, so the callback may enqueue (the
        agents publish a `health` message); a state that changes and changes back
        within one call of `enqueue_many` or `ack_many` is not reported.
        """
        self._state_listeners.append(callback)

    def _report_state(self) -> None:
        """Store and hand on a change of state (outside any transaction)."""
        state = self._state
        if state == self._reported:
            return
        self._reported = state
        try:
            with self._transaction():
                self._db.execute("INSERT OR REPLACE INTO meta VALUES ('state', ?)", (state,))
        except sqlite3.OperationalError as err:  # the disk is full: still say it
            log.error("outbox %s: state %s not stored: %s", self.path, state, err)
        for callback in self._state_listeners:
            try:
                callback(state, self._state_reason)
            except Exception:
                log.exception("outbox %s: state listener failed on %s", self.path, state)

    # -- seqs ------------------------------------------------------------------

    def _meta_int(self, key: str) -> int:
        return int(self._db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()[0])

    def _bump_meta(self, key: str, by: int) -> int:
        value = self._meta_int(key) + by
        self._db.execute("UPDATE meta SET value=? WHERE key=?", (str(value), key))
        return value

    def last_seq(self) -> int:
        """The highest seq ever handed out (0 before the first)."""
        return self._meta_int("last_seq")

    def reserve_seq(self, purpose: str = "reserved") -> int:
        """A new seq for a payload published outside the outbox (e.g. the last will).

        Durable before it returns, so it is never handed out again.
        """
        with self._transaction():
            seq = self._bump_meta("last_seq", 1)
            self._db.execute("INSERT INTO reserved VALUES (?, ?, ?)", (seq, purpose, self._clock()))
            self._db.execute(
                "DELETE FROM reserved WHERE seq <= ?", (seq - RESERVED_KEEP,)
            )  # keeps the table bounded; reservations are diagnostics only
        return seq

    def reservations(self) -> dict[int, str]:
        """Recent reserved seqs and what they were for (explains gaps)."""
        return dict(self._db.execute("SELECT seq, purpose FROM reserved").fetchall())

    # -- enqueue ---------------------------------------------------------------

    def enqueue(
        self,
        topic: str,
        payload: dict[str, Any],
        *,
        retain: bool = False,
        keep: bool | None = None,
    ) -> int:
        """Store a message and return its seq; sets `payload["seq"]` and `["node_id"]`.

        `keep` (default: everything but positions) marks evidence that is never
        thinned. Raises `OutboxFullError` when a thinnable message cannot be
        stored because the outbox is full, and for any message when the disk
        itself is full.
        """
        seqs = self.enqueue_many([(topic, payload, retain)], keep=keep)
        return seqs[0]

    def enqueue_many(
        self,
        messages: Sequence[tuple[str, dict[str, Any], bool]],
        *,
        keep: bool | None = None,
    ) -> list[int]:
        """Store several `(topic, payload, retain)` messages in one transaction."""
        try:
            seqs = self._store(messages, keep)
        finally:
            self._report_state()
        self._notify()
        return seqs

    def _store(
        self, messages: Sequence[tuple[str, dict[str, Any], bool]], keep: bool | None
    ) -> list[int]:
        seqs: list[int] = []
        now = self._clock()
        try:
            with self._transaction():
                for topic, payload, retain in messages:
                    keep_it = (not _is_thinnable(topic)) if keep is None else keep
                    seq = self._bump_meta("last_seq", 1)
                    blob = outbox_db.encode(topic, payload, self.node_id, seq)
                    self._make_room(len(blob), keep_it)
                    self._db.execute(
                        "INSERT INTO outbox VALUES (?, ?, ?, ?, ?, ?, NULL)",
                        (seq, topic, blob, int(retain), int(keep_it), now),
                    )
                    self._bytes += len(blob)
                    self._count += 1
                    seqs.append(seq)
        except OutboxError:
            self._recount()
            self._refused()
            raise
        except (TypeError, ValueError) as err:
            # Not JSON-serialisable (or NaN): nothing stored, no seq consumed.
            self._recount()
            raise OutboxError(f"outbox {self.path}: message is not valid JSON: {err}") from err
        except sqlite3.OperationalError as err:
            self._recount()
            if "full" in str(err).lower():
                self._set_state("full", f"disk full: {err}")
                self._refused()
                raise OutboxFullError(f"outbox {self.path}: {err}") from err
            raise OutboxError(f"outbox {self.path}: {err}") from err
        return seqs

    def _refused(self) -> None:
        try:
            with self._transaction():
                self._bump_meta("refused_total", 1)
        except sqlite3.OperationalError:
            log.exception("outbox %s: cannot even count a refused message", self.path)

    def _recount(self) -> None:
        # After a rollback, the in-memory counters are re-read from the truth.
        self._bytes, self._count = outbox_db.totals(self._db)

    def free_disk_bytes(self) -> int:
        return shutil.disk_usage(self.path.parent).free

    def _over_limit(self, extra: int) -> bool:
        return self._bytes + extra > self.max_bytes or self._disk_short(extra)

    def _roomy(self, size: int) -> bool:
        """Room again: under `recover_below` of `max_bytes` and above the disk floor.

        Thinning stops at `low_water` (90 %), so thinning alone never makes the
        outbox roomy: the state goes back to `ok` only when messages left it (or the
        disk floor cleared), and does not flap with every thinning pass.
        """
        return (
            self._bytes + size <= self.recover_below * self.max_bytes
            and self.free_disk_bytes() - size >= self.min_free_disk_bytes
        )

    def _disk_short(self, size: int) -> bool:
        """The file system is below its floor and the file has no free pages to reuse."""
        if self.free_disk_bytes() - size >= self.min_free_disk_bytes:
            return False
        page_size = int(self._db.execute("PRAGMA page_size").fetchone()[0])
        return self._freelist_pages() * page_size < 2 * size

    def _make_room(self, size: int, keep: bool) -> None:
        """Inside a transaction: thin old positions until `size` more bytes fit."""
        if not self._over_limit(size):
            if self._state != "ok" and self._roomy(size):
                self._set_state("ok", "outbox has room again")
            return
        target = self.low_water * self.max_bytes
        while self._bytes + size > target and self._thin_once():
            pass
        if self._disk_short(size):
            # The disk floor: one pass only. Deleted rows free pages inside the file
            # (reused by the next inserts), not on the disk, so looping would thin
            # the whole track without gaining a byte of disk space.
            self._thin_once()
        if not self._over_limit(size):
            self._set_state("thinning", "outbox full: old positions thinned to make room")
            return
        if keep:
            # Evidence is stored beyond the soft limit while the disk itself has room.
            self._set_state("full", "outbox full of evidence: stored above max_bytes")
            return
        self._set_state("full", "outbox full: new positions refused")
        raise OutboxFullError(
            f"outbox {self.path} is full ({self._bytes} of {self.max_bytes} bytes, "
            f"{self.free_disk_bytes()} bytes free on disk); position refused"
        )

    def _thin_once(self) -> bool:
        """Delete every other thinnable message in the older half of them.

        Repeated passes halve the resolution of the oldest part of the track
        first; the newest half always stays at full resolution.
        """
        count = int(self._db.execute("SELECT COUNT(*) FROM outbox WHERE keep=0").fetchone()[0])
        if count < 4:
            return False
        rows = self._db.execute(
            "SELECT id, length(payload) FROM outbox WHERE keep=0 ORDER BY id LIMIT ?",
            (count // 2,),
        ).fetchall()
        victims = rows[1::2]  # keep the very oldest, drop every second one
        self._db.executemany("DELETE FROM outbox WHERE id=?", [(row[0],) for row in victims])
        freed = sum(int(row[1]) for row in victims)
        self._bytes -= freed
        self._count -= len(victims)
        self._bump_meta("thinned_total", len(victims))
        log.warning(
            "outbox %s of node %s full: thinned %d old positions (seq %d..%d), %d bytes freed",
            self.path,
            self.node_id,
            len(victims),
            victims[0][0],
            victims[-1][0],
            freed,
        )
        return True

    def _set_state(self, state: OutboxState, reason: str) -> None:
        if state == self._state:
            return
        level = logging.INFO if state == "ok" else logging.ERROR
        log.log(level, "outbox %s of node %s is now %s: %s", self.path, self.node_id, state, reason)
        self._state = state
        self._state_reason = reason

    # -- reading and acknowledging -----------------------------------------------

    def pending(self, limit: int, **filters: Unpack[PendingFilter]) -> list[OutboxItem]:
        """Oldest unacknowledged messages `filters` leave, in seq order (a `node_id`
        other than this outbox's own leaves none)."""
        node_id = filters.pop("node_id", None)
        if node_id is not None and node_id != self.node_id:
            return []
        # Items of this outbox carry no node id of their own ("").
        return outbox_db.select_pending(self._db, limit, keep="keep", node="''", **filters)

    def max_id(self) -> int:
        """No stored message has a higher id (ids are seqs: the last seq handed out)."""
        return self.last_seq()

    def mark_sent(self, item_ids: Iterable[int], at: float | None = None) -> int:
        """Note the broker's PUBACK for these messages (kept until the server's ack)."""
        ids = [int(i) for i in item_ids]
        if not ids:
            return 0
        with self._transaction():
            return outbox_db.mark_sent(self._db, ids, self._clock() if at is None else at)

    def ack(self, item_id: int) -> bool:
        """Remove one acknowledged message; False if it was not there."""
        return self.ack_many([item_id]) == 1

    def ack_many(self, item_ids: Iterable[int]) -> int:
        """Remove acknowledged messages in one transaction; returns how many went.

        The server's acknowledgement comes as ranges (`ack_ranges`); this is for the
        fallback to the broker's PUBACK (a server that never acknowledges)."""
        ids = [int(i) for i in item_ids]
        if not ids:
            return 0
        try:
            return self._remove(outbox_db.id_clauses(ids))
        finally:
            self._report_state()

    def ack_ranges(self, ranges: Iterable[tuple[int, int]]) -> int:
        """Remove the messages the server acknowledged (inclusive `(first, last)` seq
        ranges) in one transaction; returns how many went. Remembers that the server
        acknowledges (`server_acknowledges`); `newest_acked_sent` is then the latest
        PUBACK time among the removed messages (None if none had one)."""
        self.newest_acked_sent = None
        clauses = [("id BETWEEN ? AND ?", [int(first), int(last)]) for first, last in ranges]
        if not self.server_acknowledges():
            with self._transaction():
                self._db.execute("INSERT OR REPLACE INTO meta VALUES ('server_acks', '1')")
        if not clauses:
            return 0
        try:
            return self._remove(clauses)
        finally:
            self._report_state()

    def forget_sent(self) -> int:
        """Remove every message the broker took (the fallback to PUBACK)."""
        try:
            return self._remove([("sent IS NOT NULL", [])])
        finally:
            self._report_state()

    def server_acknowledges(self) -> bool:
        """True once the server has acknowledged anything (kept across restarts)."""
        row = self._db.execute("SELECT value FROM meta WHERE key='server_acks'").fetchone()
        return row is not None and row[0] == "1"

    def _remove(self, clauses: Sequence[tuple[str, Sequence[Any]]]) -> int:
        with self._transaction():
            removal = outbox_db.remove(self._db, clauses)
        self.newest_acked_sent = removal.newest_sent
        self._bytes -= removal.freed
        self._count -= removal.removed
        if self._count == 0 and self._freelist_pages() > VACUUM_FREE_PAGES:
            # Give the pages of a drained backlog back to the file system (only
            # after a real backlog: each vacuum is one more write to the flash).
            # executescript steps the pragma to the end (execute frees one page only).
            self._db.executescript("PRAGMA incremental_vacuum;")
        if self._state != "ok" and self._roomy(0):
            self._set_state("ok", "backlog drained: outbox has room again")
        return removal.removed

    def _freelist_pages(self) -> int:
        return int(self._db.execute("PRAGMA freelist_count").fetchone()[0])

    def stats(self) -> OutboxStats:
        oldest = self._db.execute("SELECT MIN(created) FROM outbox").fetchone()[0]
        return OutboxStats(
            count=self._count,
            bytes=self._bytes,
            oldest_age_s=None if oldest is None else max(0.0, self._clock() - float(oldest)),
            state=self._state,
            max_bytes=self.max_bytes,
            free_disk_bytes=self.free_disk_bytes(),
            last_seq=self.last_seq(),
            thinned_total=self._meta_int("thinned_total"),
            refused_total=self._meta_int("refused_total"),
            sent=int(
                self._db.execute("SELECT COUNT(*) FROM outbox WHERE sent IS NOT NULL").fetchone()[0]
            ),
        )

    # -- transactions ------------------------------------------------------------

    def _transaction(self) -> Transaction:
        return Transaction(self._db)

"""The gate's durable queue of images to upload (SQLite, like the outbox; docs/gate-agent.md).

One row per image: its passage, its number `n`, the JPEG's path (the file stays where the
reading saved it, under `images_dir`), its metadata, and when to try it next. A row leaves
the queue only when the server has stored the image (or refused it for good). The queue
is bounded: beyond `max_items` the oldest rows are dropped — logged, their files kept on
the gate's disk — so a server away for weeks cannot fill the gate's disk with the queue.

Not thread-safe: each call opens its own connection, so calls may come from worker
threads (`asyncio.to_thread`) one at a time or concurrently (SQLite serialises writers).
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from contract.evidence import ImageMeta
from edge.gate.evidence import EvidenceImage

log = logging.getLogger(__name__)

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS uploads (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    passage_id TEXT NOT NULL,
    n INTEGER NOT NULL,
    path TEXT NOT NULL,
    meta TEXT NOT NULL,
    created REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_at REAL NOT NULL,
    last_error TEXT,
    UNIQUE (passage_id, n)
);
CREATE INDEX IF NOT EXISTS uploads_due ON uploads (next_at);
"""


class UploadQueueError(RuntimeError):
    """The queue's file cannot be used."""


@dataclass(frozen=True, slots=True)
class Upload:
    id: int
    passage_id: str
    n: int
    path: Path
    meta: ImageMeta
    created: float
    attempts: int


class UploadQueue:
    def __init__(self, path: Path, max_items: int) -> None:
        self.path = path
        self.max_items = max_items
        self.dropped_total = 0
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with self._db() as db:
                db.executescript(_SCHEMA)
        except (OSError, sqlite3.DatabaseError) as err:
            raise UploadQueueError(f"upload queue {path} cannot be opened: {err}") from err

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        with closing(sqlite3.connect(self.path, isolation_level=None, timeout=30.0)) as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            yield db

    def add(self, passage_id: str, images: Iterable[EvidenceImage], now: float) -> int:
        """Queue a passage's images (one transaction); how many were new."""
        rows = [(passage_id, i.n, str(i.path), i.meta.model_dump_json(), now, now) for i in images]
        with self._db() as db:
            db.execute("BEGIN IMMEDIATE")
            before = db.total_changes
            db.executemany(
                "INSERT OR IGNORE INTO uploads (passage_id, n, path, meta, created, next_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                rows,
            )
            added = db.total_changes - before
            (count,) = db.execute("SELECT COUNT(*) FROM uploads").fetchone()
            excess = count - self.max_items
            if excess > 0:
                dropped = db.execute(
                    "SELECT passage_id, n FROM uploads ORDER BY id LIMIT ?", (excess,)
                ).fetchall()
                db.execute(
                    "DELETE FROM uploads WHERE id IN (SELECT id FROM uploads ORDER BY id LIMIT ?)",
                    (excess,),
                )
            db.execute("COMMIT")
        if excess > 0:
            self.dropped_total += excess
            log.error(
                "upload queue full (%d images): the %d oldest dropped, first %s image %d "
                "(their files stay on this gate's disk)",
                self.max_items, excess, dropped[0][0], dropped[0][1],
            )  # fmt: skip
        return added

    def due(self, now: float, limit: int = 16) -> list[Upload]:
        """The images whose time has come, oldest first."""
        with self._db() as db:
            rows = db.execute(
                "SELECT id, passage_id, n, path, meta, created, attempts FROM uploads "
                "WHERE next_at <= ? ORDER BY id LIMIT ?",
                (now, limit),
            ).fetchall()
        return [
            Upload(r[0], r[1], r[2], Path(r[3]), ImageMeta.model_validate_json(r[4]), r[5], r[6])
            for r in rows
        ]

    def next_due(self) -> float | None:
        """When the next image is due (None: the queue is empty)."""
        with self._db() as db:
            (at,) = db.execute("SELECT MIN(next_at) FROM uploads").fetchone()
        return float(at) if at is not None else None

    def done(self, item_id: int) -> None:
        with self._db() as db:
            db.execute("DELETE FROM uploads WHERE id = ?", (item_id,))

    def retry(self, item_id: int, at: float, error: str) -> None:
        with self._db() as db:
            db.execute(
                "UPDATE uploads SET attempts = attempts + 1, next_at = ?, last_error = ? "
                "WHERE id = ?",
                (at, error[:500], item_id),
            )

    def count(self) -> int:
        with self._db() as db:
            (count,) = db.execute("SELECT COUNT(*) FROM uploads").fetchone()
        return int(count)

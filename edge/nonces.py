"""A durable nonce store: a command's nonce is remembered across restarts.

Implements `contract.signing.NonceStore`. A nonce is claimed (and fsynced) before
the command is carried out, so a replayed command is refused even after a power
cut or a restart of the agent. Nonces are forgotten only a grace period after
their command expired; the grace period covers a device clock that jumps back.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta
from pathlib import Path

from contract.ids import utc_now

#: Nonces are kept this long after their command expired.
DEFAULT_GRACE = timedelta(days=1)


class SqliteNonceStore:
    """Nonces seen by one device, in a SQLite file (WAL, synchronous=FULL)."""

    def __init__(self, path: Path, grace: timedelta = DEFAULT_GRACE) -> None:
        self.path = path
        self.grace = grace
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None, timeout=30.0)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS nonces ("
            " nonce TEXT PRIMARY KEY,"
            " expires_at REAL NOT NULL"  # POSIX seconds, UTC
            ")"
        )

    def claim(self, nonce: str, expires_at: datetime) -> bool:
        """Record `nonce`; False when it was already recorded (a replay)."""
        forget_before = (utc_now() - self.grace).timestamp()
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.execute("DELETE FROM nonces WHERE expires_at < ?", (forget_before,))
            cursor = self._db.execute(
                "INSERT OR IGNORE INTO nonces VALUES (?, ?)", (nonce, expires_at.timestamp())
            )
            self._db.execute("COMMIT")
        except BaseException:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise
        # A replay is counted and logged (throttled) by the caller, edge.commands: a line
        # here for each would let a flood of replays write the log full.
        return cursor.rowcount == 1

    def __len__(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM nonces").fetchone()[0])

    def close(self) -> None:
        self._db.close()

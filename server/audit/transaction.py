"""Write transactions that serialise with every other writer, on SQLite and PostgreSQL.

SQLite: Python's sqlite3 (3.11) opens a transaction only at the first INSERT/UPDATE/
DELETE, so a SELECT before it reads outside the transaction. `BEGIN IMMEDIATE` takes
the database's write lock up front: a read-check-write sequence inside it cannot
interleave with another writer (others wait for it: `server.store.writer_lock`).

PostgreSQL: an ordinary READ COMMITTED transaction; callers lock the rows they
read-check-write (`SELECT … FOR UPDATE`), and the audit chain head is locked by
`server.audit.log.append`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine

from server.store.writer_lock import write_transaction

__all__ = ["snapshot", "write_transaction"]


@contextmanager
def snapshot(engine: Engine) -> Iterator[Connection]:
    """A read-only connection whose statements all see one consistent snapshot."""
    with engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("BEGIN")
        else:
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
        try:
            yield conn
        finally:
            conn.rollback()

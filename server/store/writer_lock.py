"""SQLite's one writer lock, taken by polling instead of by SQLite's busy handler.

SQLite lets one connection write at a time. A connection that finds the lock taken
calls its busy handler, which sleeps 1, 2, 5, 10, 15, 20, 25, 25, 25, 50, 50, 100 ms in
turn (`sqliteDefaultBusyCallback`, SQLite's `main.c`) and tries again after each sleep:
a writer that waits behind a 6 ms transaction sleeps 8 ms, behind a 20 ms one 33 ms.
A gate decision waiting behind a batch of positions paid those steps (the tail of
`server.gate_decision_ms_p99`). `begin_immediate` turns the busy handler off for
the one statement that takes the lock, `BEGIN IMMEDIATE`, and tries it again every
`poll_s` until `timeout_s`; once it holds the lock, nothing in the transaction waits
again (in WAL mode readers never block a writer).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import OperationalError

#: The store's busy timeout for every other statement (set on each new connection).
BUSY_TIMEOUT_MS = 10_000
#: How often a waiting writer tries again: gate decisions and officers' changes…
POLL_S = 0.0005
#: … and the ingest's batches of positions, which yield to them.
BATCH_POLL_S = 0.002


def begin_immediate(
    conn: Connection, poll_s: float = POLL_S, timeout_s: float = BUSY_TIMEOUT_MS / 1000
) -> None:
    """`BEGIN IMMEDIATE` on a SQLite connection, waiting for the writer lock by polling;
    `OperationalError` ("database is locked") when it is not had within `timeout_s`."""
    conn.exec_driver_sql("PRAGMA busy_timeout=0")
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                conn.exec_driver_sql("BEGIN IMMEDIATE")
                return
            except OperationalError as err:
                if "locked" not in str(err.orig) or time.monotonic() >= deadline:
                    raise
            time.sleep(poll_s)
    finally:
        conn.exec_driver_sql(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")


@contextmanager
def write_transaction(engine: Engine, poll_s: float = POLL_S) -> Iterator[Connection]:
    """A connection in a transaction that holds the writer lock (SQLite) from its start;
    it commits on success and rolls back on error. On PostgreSQL an ordinary
    transaction."""
    with engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            begin_immediate(conn, poll_s)
        try:
            yield conn
        except BaseException:
            conn.rollback()
            raise
        conn.commit()

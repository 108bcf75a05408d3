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

Polling alone leaves a gate decision waiting for whatever batch of positions holds the
lock when it comes, and under load a batch of 250 rows held it 18 ms (p50), 50 ms
(p99): most of a decision's 99th percentile. So an urgent writer (a gate decision) says
it is waiting (`urgent_turn`: an exclusive `flock` on `<database>.writers`, next to the
database file). The ingest writes a batch in parts of `WRITE_CHUNK` rows and looks
between parts (`urgent_waiting`: a shared `flock` tried without waiting): when a
decision waits, it commits what it has, and before its next transaction lets the
decision go first (`let_urgent_first`: a shared `flock` taken and let go). A decision
waits for one part and a commit at most; a batch with no decision waiting is one
transaction. The kernel drops a dead process's flock.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import OperationalError

#: The store's busy timeout for every other statement (set on each new connection).
BUSY_TIMEOUT_MS = 10_000
#: How often a waiting writer tries again: gate decisions and officers' changes…
POLL_S = 0.0005
#: … and the ingest's batches of positions, which yield to them.
BATCH_POLL_S = 0.002
#: Rows of a batch written between two looks for an urgent writer.
WRITE_CHUNK = 100


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


def turn_file(engine: Engine) -> str | None:
    """`<database>.writers` beside a SQLite database file; None when there is nothing to
    order (PostgreSQL, an in-memory database)."""
    if engine.dialect.name != "sqlite":
        return None
    database = engine.url.database
    return f"{database}.writers" if database and database != ":memory:" else None


@contextmanager
def urgent_turn(engine: Engine) -> Iterator[None]:
    """Held while an urgent writer waits for the writer lock and writes: batches of
    positions commit what they have and wait (`urgent_waiting`, `let_urgent_first`)."""
    path = turn_file(engine)
    if path is None:
        yield
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # lets the flock go


def urgent_waiting(engine: Engine) -> bool:
    """Whether an urgent writer waits or writes now (without waiting for it)."""
    path = turn_file(engine)
    if path is None:
        return False
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def let_urgent_first(engine: Engine) -> None:
    """Wait while an urgent writer waits or writes; at once when none does."""
    path = turn_file(engine)
    if path is None:
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
    finally:
        os.close(fd)


@contextmanager
def write_transaction(
    engine: Engine, poll_s: float = POLL_S, urgent: bool = False
) -> Iterator[Connection]:
    """A connection in a transaction that holds the writer lock (SQLite) from its start;
    it commits on success and rolls back on error. On PostgreSQL an ordinary
    transaction. `urgent` (a gate decision): batches of positions let it in before
    the rest of their batch (`urgent_turn`)."""
    with engine.connect() as conn:
        if conn.dialect.name != "sqlite":
            with _committed(conn):
                yield conn
            return
        with urgent_turn(engine) if urgent else nullcontext():
            begin_immediate(conn, poll_s)
            with _committed(conn):
                yield conn


@contextmanager
def _committed(conn: Connection) -> Iterator[None]:
    try:
        yield
    except BaseException:
        conn.rollback()
        raise
    conn.commit()

"""`server.store.writer_lock`: SQLite's writer lock taken by polling, on real files."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from server.store import Store
from server.store.writer_lock import (
    BATCH_POLL_S,
    BUSY_TIMEOUT_MS,
    WRITE_CHUNK,
    begin_immediate,
    let_urgent_first,
    turn_file,
    write_transaction,
)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    opened = Store.open(f"sqlite:///{tmp_path / 'lock.db'}")
    with opened.engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (n INTEGER)")
    return opened


def _hold(store: Store, seconds: float, holding: threading.Event) -> None:
    with write_transaction(store.engine) as conn:
        conn.exec_driver_sql("INSERT INTO t VALUES (1)")
        holding.set()
        time.sleep(seconds)


def test_a_writer_waits_for_the_lock_and_then_writes(store: Store) -> None:
    holding = threading.Event()
    holder = threading.Thread(target=_hold, args=(store, 0.3, holding))
    holder.start()
    assert holding.wait(5)
    started = time.monotonic()
    with write_transaction(store.engine) as conn:
        waited = time.monotonic() - started
        conn.exec_driver_sql("INSERT INTO t VALUES (2)")
    holder.join()
    assert waited >= 0.2  # it did wait for the holder's commit…
    with store.engine.connect() as conn:  # …and both rows are there, in commit order
        assert [r[0] for r in conn.execute(text("SELECT n FROM t ORDER BY rowid"))] == [1, 2]
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar_one() == BUSY_TIMEOUT_MS


def test_a_lock_not_had_in_time_is_an_error_and_changes_nothing(store: Store) -> None:
    holding = threading.Event()
    holder = threading.Thread(target=_hold, args=(store, 0.5, holding))
    holder.start()
    assert holding.wait(5)
    with store.engine.connect() as conn:
        with pytest.raises(OperationalError, match="locked"):
            begin_immediate(conn, timeout_s=0.05)
        assert not conn.connection.dbapi_connection.in_transaction  # type: ignore[union-attr]
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar_one() == BUSY_TIMEOUT_MS
    holder.join()
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM t").scalar_one() == 1


def _insert_then_fail(store: Store) -> None:
    with write_transaction(store.engine) as conn:
        conn.exec_driver_sql("INSERT INTO t VALUES (3)")
        raise RuntimeError("refused")


def test_an_error_inside_rolls_back(store: Store) -> None:
    with pytest.raises(RuntimeError, match="refused"):
        _insert_then_fail(store)
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM t").scalar_one() == 0


# ---- urgent writers first ---------------------------------------------------------------

_HOLD_URGENT = """
import sys, time
from sqlalchemy import create_engine
from server.store.writer_lock import urgent_turn
engine = create_engine(sys.argv[1])
with urgent_turn(engine):
    print("holding", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def test_a_batch_waits_while_an_urgent_writer_of_another_process_waits(store: Store) -> None:
    """The gate worker is a process of its own: its turn is a flock on a file beside the
    database, which the ingest's next chunk waits for."""
    import subprocess
    import sys

    url = str(store.engine.url)
    assert turn_file(store.engine) == f"{store.engine.url.database}.writers"
    started = time.monotonic()
    let_urgent_first(store.engine)  # nobody urgent: at once
    assert time.monotonic() - started < 0.1
    child = subprocess.Popen(
        [sys.executable, "-c", _HOLD_URGENT, url, "0.5"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "holding"
        started = time.monotonic()
        let_urgent_first(store.engine)
        assert time.monotonic() - started >= 0.3  # waited for the urgent writer
    finally:
        child.wait(10)


def test_an_urgent_writer_goes_before_the_next_part(store: Store) -> None:
    """A batch written in parts: an urgent transaction that asks for the lock while a
    part is written has the batch commit that part and go first; the rest of the batch
    follows in one transaction. With nobody urgent a batch is one transaction."""
    from server.store.database import IncomingMessage
    from tests.server.test_store import pos

    order: list[str] = []
    chunk_started = threading.Event()
    urgent_done = threading.Event()
    taken = begin_immediate

    def traced(conn: object, poll_s: float = 0.002, **kw: object) -> None:
        taken(conn, poll_s)  # type: ignore[arg-type]
        if poll_s == BATCH_POLL_S:
            order.append("chunk")
            if len(order) == 1:
                chunk_started.set()
                time.sleep(0.2)  # the first chunk holds the lock a while

    def urgent() -> None:
        assert chunk_started.wait(5)
        with write_transaction(store.engine, urgent=True) as conn:
            conn.exec_driver_sql("INSERT INTO t VALUES (9)")
            order.append("urgent")
        urgent_done.set()

    batch: list[IncomingMessage] = [pos(seq) for seq in range(1, 2 * WRITE_CHUNK + 2)]
    import server.store.writer_lock as writer_lock

    original = writer_lock.begin_immediate
    writer_lock.begin_immediate = traced  # type: ignore[assignment]
    try:
        thread = threading.Thread(target=urgent)
        thread.start()
        fresh = store.store_messages(batch)
        thread.join(5)
    finally:
        writer_lock.begin_immediate = original
    assert urgent_done.is_set()
    assert order == ["chunk", "urgent", "chunk"]  # part 1; the urgent one; parts 2 and 3
    assert fresh == batch and store.message_count() == len(batch)

    order.clear()
    more = [pos(seq) for seq in range(1000, 1000 + 2 * WRITE_CHUNK + 1)]
    writer_lock.begin_immediate = traced  # type: ignore[assignment]
    try:
        assert store.store_messages(more + batch[:5]) == more  # the 5 are stored already
    finally:
        writer_lock.begin_immediate = original
    # One transaction for three parts, rolled back at the repeat; then one with RETURNING
    # (which takes the lock by SQLite's own handler, not traced).
    assert order == ["chunk"]
    assert store.message_count() == len(batch) + len(more)


def test_no_turn_file_without_a_sqlite_file() -> None:
    from sqlalchemy import create_engine

    assert turn_file(create_engine("sqlite://")) is None
    assert turn_file(create_engine("postgresql+psycopg://u@localhost/db")) is None

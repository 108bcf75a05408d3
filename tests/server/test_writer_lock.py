"""`server.store.writer_lock`: SQLite's writer lock taken by polling, on real files."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from server.store import Store
from server.store.writer_lock import BUSY_TIMEOUT_MS, begin_immediate, write_transaction


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

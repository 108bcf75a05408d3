"""SQLite's write-ahead log: a child process's store never copies it back into the
database file in its commits; the server process's store does, and `checkpoint`."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from contract.payloads import Position
from server.store import Store
from server.store.database import IncomingMessage

T0 = datetime(2026, 12, 6, 8, 0, tzinfo=UTC)
PAGE = 4096


def positions(first: int, count: int) -> list[IncomingMessage]:
    """Positions whose stored text is about 2 KB each (half a page)."""
    out = []
    for seq in range(first, first + count):
        msg = Position(node_id="T1", seq=seq, ts=T0 + timedelta(seconds=seq), lat=23.1,
                       lon=113.3, fix="3d", sats=12, hdop=0.8)  # fmt: skip
        raw = json.dumps({**json.loads(msg.to_json()), "pad": "x" * 2000})
        out.append(IncomingMessage("position", msg, raw, T0))
    return out


def wal(db: Path) -> Path:
    return db.with_name(db.name + "-wal")


def log_state(store: Store) -> tuple[int, int]:
    """(frames in the log, frames of it copied into the database file)."""
    with store.engine.connect() as conn:
        _busy, frames, copied = conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)").one()
    return int(frames), int(copied)


def test_a_child_store_leaves_the_log_to_the_server(tmp_path: Path) -> None:
    db = tmp_path / "store.db"
    server = Store.open(f"sqlite:///{db}")
    child = Store.open(f"sqlite:///{db}", checkpoints=False)
    try:
        with child.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 0
        with server.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 1000
        # 6,000 messages of ~2 KB in batches: well past SQLite's 1,000-page mark
        for first in range(1, 6000, 500):
            child.store_messages(positions(first, 500))
        assert wal(db).stat().st_size > 1500 * PAGE  # never copied back, never restarted
        server.checkpoint()
        frames, copied = log_state(server)
        assert frames > 1500 and copied == frames
        # The server's own commits do copy it back once it is past 1,000 pages, and
        # then write it again from its start: the file stops growing.
        size = wal(db).stat().st_size
        for first in range(6001, 12000, 500):
            server.store_messages(positions(first, 500))
        assert wal(db).stat().st_size <= size
        assert server.message_count() == 12000
    finally:
        child.close()
        server.close()


async def test_checkpoint_forever_checkpoints_until_cancelled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = Store.open(f"sqlite:///{tmp_path / 'store.db'}")
    calls: list[float] = []
    monkeypatch.setattr(server, "checkpoint", lambda: calls.append(time.monotonic()))
    try:
        task = asyncio.create_task(server.checkpoint_forever(every_s=0.02))
        await asyncio.sleep(0.3)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        seen = len(calls)
        assert seen >= 3
        await asyncio.sleep(0.1)
        assert len(calls) == seen  # stopped
    finally:
        server.close()

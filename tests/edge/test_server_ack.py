"""The server's acknowledgement ends a message's life in the outbox, not the broker's PUBACK.

Real Mosquitto (production settings), the server's real ingest on SQLite
(`StoringServer`), the real link and outbox. A SIGKILLed broker loses what it queued
since its last autosave (every 10 s); the node sends it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from contract import topics
from contract.ids import format_ts, utc_now
from devtools.broker import MosquittoBroker
from edge.link import MqttLink
from edge.outbox import Outbox
from server.store.dead_letters import DeadLetters
from tests.edge.conftest import StoringServer, settings_for

NODE = "T-ACK"
#: The broker saves its state every 10 s (config/mosquitto/conf.d/bondwatch.conf).
AUTOSAVE_S = 10.0


def position(i: int) -> dict[str, Any]:
    return {"ts": format_ts(utc_now()), "lat": 22.5 + i * 1e-5, "lon": 113.9, "fix": "3d"}


async def no_command(raw: bytes) -> None:
    raise AssertionError(f"unexpected command {raw!r}")


async def until(predicate: Any, within: float = 20.0) -> None:
    async with asyncio.timeout(within):
        while not predicate():  # noqa: ASYNC110 - polls state of the code under test
            await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def running(link: MqttLink) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(link.run())
    try:
        yield task
    finally:
        await asyncio.wait_for(link.stop(), 20)
        await asyncio.wait_for(task, 20)


async def autosaved(broker: MosquittoBroker, after: float) -> None:
    """Wait until the broker has written its persistence file after `after` (wall time)."""
    saved = broker.workdir / "data" / "mosquitto.db"
    await until(lambda: saved.exists() and saved.stat().st_mtime > after, AUTOSAVE_S + 5)


# ---- the outbox's side ---------------------------------------------------------------------


def test_puback_marks_sent_and_the_servers_ranges_remove(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db", NODE, 1_000_000)
    seqs = box.enqueue_many([(topics.position(NODE), position(i), False) for i in range(10)])
    assert box.mark_sent(seqs[:6], at=1000.0) == 6
    stats = box.stats()
    assert (stats.count, stats.sent) == (10, 6)
    assert [i.id for i in box.pending(100, unsent_only=True)] == seqs[6:]
    assert [i.id for i in box.pending(100, sent_before=1000.5)] == seqs[:6]
    assert not box.server_acknowledges()
    # The server holds seqs 1-3 and 5 (4 lost on the way); 99 was never ours.
    assert box.ack_ranges([(seqs[0], seqs[2]), (seqs[4], seqs[4]), (99, 99)]) == 4
    assert box.newest_acked_sent == 1000.0
    assert [i.id for i in box.pending(100)] == [seqs[3], *seqs[5:]]
    assert box.server_acknowledges()
    box.close()
    again = Outbox(tmp_path / "o.db", NODE, 1_000_000)
    assert again.server_acknowledges()  # kept across restarts: no fallback to PUBACK
    assert again.stats().sent == 2
    assert again.forget_sent() == 2
    assert [i.id for i in again.pending(100)] == seqs[6:]


def test_an_outbox_file_from_before_the_acks_gets_the_sent_column(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    box = Outbox(path, NODE, 1_000_000)
    seq = box.enqueue(topics.position(NODE), position(0))
    box.close()
    with contextlib.closing(sqlite3.connect(path)) as conn:  # the table as it was
        conn.executescript(
            "CREATE TABLE old (id INTEGER PRIMARY KEY, topic TEXT NOT NULL, "
            "payload BLOB NOT NULL, retain INTEGER NOT NULL, keep INTEGER NOT NULL, "
            "created REAL NOT NULL);"
            "INSERT INTO old SELECT id, topic, payload, retain, keep, created FROM outbox;"
            "DROP TABLE outbox; ALTER TABLE old RENAME TO outbox;"
        )
    reopened = Outbox(path, NODE, 1_000_000)
    (item,) = reopened.pending(10)
    assert (item.id, item.sent) == (seq, None)
    assert reopened.mark_sent([seq]) == 1


# ---- end to end ----------------------------------------------------------------------------


async def test_the_outbox_keeps_what_the_broker_took_until_the_server_stored_it(
    tmp_path: Path, own_broker: MosquittoBroker
) -> None:
    box = Outbox(tmp_path / "o.db", NODE, 10_000_000)
    server = StoringServer(own_broker, tmp_path / "server.db")
    await server.start()
    await server.stop()  # away (restarting): its persistent session waits at the broker
    link = MqttLink(settings_for(own_broker), "truck", NODE, box, no_command)
    try:
        async with running(link):
            await until(lambda: link.connected)
            seqs = box.enqueue_many(
                [(topics.position(NODE), position(i), False) for i in range(20)]
            )
            await until(lambda: box.stats().sent == 20)  # the broker took them all
            await asyncio.sleep(1.0)
            assert box.stats().count == 20  # ...and the outbox still holds them
            await server.start()  # back: the broker delivers what it queued
            await until(lambda: box.stats().count == 0)
        assert server.seqs(NODE, "position") == seqs
        assert link.server_acked_total == 20 and box.server_acknowledges()
    finally:
        await server.stop()


async def test_broker_sigkill_with_the_server_away_loses_nothing(
    tmp_path: Path, own_broker: MosquittoBroker
) -> None:
    """Issue 23's finding: 0 of 1,000 after a crash. Now the node sends them again."""
    box = Outbox(tmp_path / "o.db", NODE, 10_000_000)
    server = StoringServer(own_broker, tmp_path / "server.db")
    await server.start()
    subscribed = time.time()
    await server.stop()  # the server restarts; its persistent session waits at the broker
    await autosaved(own_broker, subscribed)  # ...and is on the broker's disk
    link = MqttLink(settings_for(own_broker), "truck", NODE, box, no_command, ack_timeout_s=1.0)
    try:
        async with running(link):
            await until(lambda: link.connected)
            seqs = box.enqueue_many(
                [(topics.position(NODE), position(i), False) for i in range(1000)]
            )
            await until(lambda: box.stats().sent == 1000, within=30)
            own_broker.kill()  # a second later: before its next autosave
            await until(lambda: not link.connected)
            own_broker.start()
            await until(lambda: link.connected and link.resent_total >= 1000, within=30)
            await server.start()
            await until(lambda: box.stats().count == 0, within=30)
        assert server.seqs(NODE, "position") == seqs  # every seq once, nothing lost
    finally:
        await server.stop()


async def test_a_server_that_never_acknowledges_falls_back_to_the_puback(
    tmp_path: Path, own_broker: MosquittoBroker, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="edge.link")
    box = Outbox(tmp_path / "o.db", NODE, 10_000_000)
    link = MqttLink(settings_for(own_broker), "truck", NODE, box, no_command, ack_fallback_s=1.0)
    async with running(link):
        await until(lambda: link.connected)
        box.enqueue_many([(topics.position(NODE), position(i), False) for i in range(5)])
        await until(lambda: box.stats().sent == 5)
        await until(lambda: link.puback_fallback, within=5)
        await until(lambda: box.stats().count == 0)
        box.enqueue(topics.position(NODE), position(9))  # now the PUBACK is the end
        await until(lambda: box.stats().count == 0 and link.published_total == 6)
    warnings = [r.getMessage() for r in caplog.records if "probably older" in r.getMessage()]
    assert len(warnings) == 1 and "5 removed" in warnings[0]


async def test_once_the_server_acknowledged_there_is_no_fallback(
    tmp_path: Path, own_broker: MosquittoBroker
) -> None:
    box = Outbox(tmp_path / "o.db", NODE, 10_000_000)
    box.ack_ranges([])  # the server acknowledged before (a restart since)
    link = MqttLink(settings_for(own_broker), "truck", NODE, box, no_command, ack_fallback_s=0.5)
    async with running(link):
        await until(lambda: link.connected)
        box.enqueue_many([(topics.position(NODE), position(i), False) for i in range(5)])
        await until(lambda: box.stats().sent == 5)
        await asyncio.sleep(2.0)
        assert not link.puback_fallback and box.stats().count == 5


async def test_a_refused_message_is_acknowledged_and_kept_as_a_dead_letter(
    tmp_path: Path, own_broker: MosquittoBroker
) -> None:
    """A message the server refuses is acknowledged once its dead letter is committed:
    the node drops it instead of sending it again at every reconnect."""
    box = Outbox(tmp_path / "o.db", NODE, 10_000_000)
    server = StoringServer(own_broker, tmp_path / "server.db")
    await server.start()
    link = MqttLink(settings_for(own_broker), "truck", NODE, box, no_command, ack_timeout_s=1.0)
    ahead = format_ts(utc_now() + timedelta(hours=1))
    try:
        async with running(link):
            await until(lambda: link.connected)
            topic = topics.position(NODE)
            seqs = box.enqueue_many(
                [
                    (topic, position(0), False),
                    (topic, {**position(1), "lat": 200.0}, False),  # refused: invalid
                    (topic, {**position(2), "ts": ahead}, False),  # refused: clock_ahead
                    (topic, position(3), False),
                ]
            )
            await until(lambda: box.stats().count == 0)
            await asyncio.sleep(2.5)  # longer than ack_timeout_s: nothing is sent again
        assert server.seqs(NODE, "position") == [seqs[0], seqs[3]]
        letters = DeadLetters(server.store.engine).list(node_id=NODE)
        assert sorted((json.loads(d["raw_text"])["seq"], d["reason"]) for d in letters) == [
            (seqs[1], "invalid"),
            (seqs[2], "clock_ahead"),
        ]
        assert link.server_acked_total == 4 and link.resent_total == 0
    finally:
        await server.stop()
        server.store.close()

"""The trucks' `declared` lists (server.declared) on a real broker from a real store."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from sqlalchemy import update

from contract import topics
from contract.broker import BrokerSettings
from contract.ids import utc_now
from contract.payloads import Declared, GateCommand, decode
from contract.signing import generate_private_key, new_nonce, sign
from devtools.broker import MosquittoBroker
from server.declared import DeclaredPublisher
from server.gates.commands import CommandPublisher
from server.store import Store, schema
from tests.edge.conftest import settings_for


def declaration(declaration_id: str, vehicle: str, locks: list[str]) -> dict[str, Any]:
    return {
        "declaration_id": declaration_id,
        "vehicle_id": vehicle,
        "lock_ids": locks,
        "route_id": "R-1",
        "origin_gate": "G-A",
        "destination_gate": "G-B",
        "time_limit_min": 600,
    }


def set_status(store: Store, trip_id: str, status: str) -> None:
    """A trip changed elsewhere (a gate release, the judge's child)."""
    with store.engine.begin() as conn:
        conn.execute(
            update(schema.trips).where(schema.trips.c.trip_id == trip_id).values(status=status)
        )


class Recorder:
    """Every message on the declared topics, retained or live, empty ones included."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, bytes, bool]] = []

    def latest(self, node: str) -> bytes | None:
        found = [p for t, p, _ in self.messages if t == topics.declared(node)]
        return found[-1] if found else None

    def trips(self, node: str) -> list[tuple[str, list[str]]] | None:
        """The node's newest list: [(trip, locks)], [] when cleared, None if never seen."""
        raw = self.latest(node)
        if raw is None:
            return None
        if raw == b"":
            return []
        message = decode(Declared, raw)
        assert message.node_id == node
        return [(t.trip_id, list(t.lock_ids)) for t in message.trips]

    async def wait(self, check: Callable[[], bool], within: float = 20.0) -> None:
        async with asyncio.timeout(within):
            while not check():  # noqa: ASYNC110 - messages arrive on the recorder's task
                await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def recording(broker: MosquittoBroker, name: str) -> AsyncIterator[Recorder]:
    recorder = Recorder()
    subscribed = asyncio.Event()

    async def run() -> None:
        async with aiomqtt.Client("127.0.0.1", broker.port, identifier=name) as client:
            await client.subscribe(topics.DECLARED_FILTER, qos=1)
            subscribed.set()
            async for message in client.messages:
                payload = message.payload
                assert isinstance(payload, bytes)
                recorder.messages.append((str(message.topic), payload, message.retain))

    task = asyncio.create_task(run())
    try:
        await asyncio.wait_for(subscribed.wait(), 10)
        yield recorder
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@contextlib.asynccontextmanager
async def publishing(
    broker: MosquittoBroker, store: Store, name: str
) -> AsyncIterator[DeclaredPublisher]:
    """A server's command connection and its declared lists, stepping every 0.2 s."""
    commands = CommandPublisher(settings_for(broker), name)
    declared = DeclaredPublisher(store, commands, every_s=0.2)
    tasks = [asyncio.create_task(commands.run()), asyncio.create_task(declared.run_forever())]
    try:
        yield declared
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store.open(f"sqlite:///{tmp_path / 'server.db'}")


async def test_each_trucks_list_follows_its_open_trips(
    own_broker: MosquittoBroker, store: Store
) -> None:
    now = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
    store.create_declaration(declaration("D-1", "TRK-A", ["L-1", "L-2"]), now)
    store.create_declaration(declaration("D-2", "TRK-B", ["L-3"]), now)
    store.create_declaration(declaration("D-3", "TRK-C", ["L-4"]), now)
    set_status(store, "D-3", "released")  # while no server ran
    # What a server before this one left retained: TRK-C's trip, released since.
    async with aiomqtt.Client("127.0.0.1", own_broker.port, identifier="old-server") as old:
        stale = {"trip_id": "D-3", "lock_ids": ["L-4"]}
        body = {"node_id": "TRK-C", "ts": "2026-12-01T08:00:00.000Z", "trips": [stale]}
        payload = json.dumps(body).encode()
        await old.publish(topics.declared("TRK-C"), payload, qos=1, retain=True)

    async with (
        recording(own_broker, "watcher") as seen,
        publishing(own_broker, store, "srv-commands") as declared,
    ):
        # At the start: every truck of the store, the released one cleared.
        await seen.wait(lambda: seen.trips("TRK-C") == [] and seen.trips("TRK-B") is not None)
        await seen.wait(lambda: seen.trips("TRK-A") is not None)
        assert seen.trips("TRK-A") == [("D-1", ["L-1", "L-2"])]
        assert seen.trips("TRK-B") == [("D-2", ["L-3"])]

        # A new declaration (woken at once, as after POST /declarations): newest first.
        store.create_declaration(declaration("D-4", "TRK-A", ["L-5"]), now.replace(minute=5))
        declared.wake()
        await seen.wait(lambda: len(seen.trips("TRK-A") or []) == 2)
        assert seen.trips("TRK-A") == [("D-4", ["L-5"]), ("D-1", ["L-1", "L-2"])]

        # Trips changed elsewhere: found by the timer's step. Held keeps its locks.
        set_status(store, "D-1", "held")
        set_status(store, "D-4", "released")
        await seen.wait(lambda: seen.trips("TRK-A") == [("D-1", ["L-1", "L-2"])])
        set_status(store, "D-1", "closed")
        set_status(store, "D-2", "released")
        await seen.wait(lambda: seen.trips("TRK-A") == [] and seen.trips("TRK-B") == [])
        count = len(seen.messages)
        assert await asyncio.to_thread(declared.step) == 0  # nothing changed: nothing sent
        assert declared.published == {}
        assert len(seen.messages) == count

    # Nothing is left retained: a newcomer reads no list (the open one is the sentinel).
    store.create_declaration(declaration("D-5", "TRK-D", ["L-6"]), now)
    async with (
        recording(own_broker, "watcher") as seen,
        publishing(own_broker, store, "srv-commands"),  # a restarted server
    ):
        # Its start publishes every truck in order (TRK-A … TRK-D): once TRK-D's is in,
        # the clears before it are too.
        await seen.wait(lambda: seen.trips("TRK-D") == [("D-5", ["L-6"])])
        async with recording(own_broker, "newcomer") as newcomer:
            await newcomer.wait(lambda: newcomer.trips("TRK-D") == [("D-5", ["L-6"])])
            retained = {t for t, p, r in newcomer.messages if r and p}
            assert retained == {topics.declared("TRK-D")}


async def test_a_truck_with_more_open_trips_than_a_list_holds_gets_the_started_and_newest(
    own_broker: MosquittoBroker, store: Store
) -> None:
    for n in range(10):
        at = datetime(2026, 12, 1, 8, n, tzinfo=UTC)
        store.create_declaration(declaration(f"D-{n}", "TRK-E", [f"L-{n}"]), at)
    async with (
        recording(own_broker, "watcher") as seen,
        publishing(own_broker, store, "srv-commands"),
    ):
        await seen.wait(lambda: seen.trips("TRK-E") is not None)
        assert [trip for trip, _ in seen.trips("TRK-E") or []] == [
            f"D-{n}" for n in range(9, 1, -1)
        ]
        # A started trip is never cut off: it leads the list, marked started.
        set_status(store, "D-0", "in_transit")
        await seen.wait(lambda: (seen.trips("TRK-E") or [("", [])])[0][0] == "D-0")
        assert [trip for trip, _ in seen.trips("TRK-E") or []] == [
            "D-0",
            *[f"D-{n}" for n in range(9, 2, -1)],
        ]
        raw = seen.latest("TRK-E")
        assert raw is not None
        assert [t.started for t in decode(Declared, raw).trips] == [True] + [False] * 7


def test_commands_go_out_before_a_burst_of_declared_lists(tmp_path: Path) -> None:
    # A new connection republishes every truck's list: a barrier command queued behind
    # them goes first, and a list queued twice is sent once (its newest state), last.
    broker = BrokerSettings(host="127.0.0.1", port=1)  # never connected: the queue alone
    commands = CommandPublisher(broker, "srv-order")
    for n in range(200):
        commands.publish_retained(topics.declared(f"TRK-{n:03d}"), b"old")
    commands.publish_retained(topics.declared("TRK-000"), b"new")  # replaces the first
    now = utc_now()
    command = GateCommand(
        node_id="G-1",
        command_id="c-1",
        passage_id="p-1",
        lane="1",
        action="open",
        reasons=["test"],
        issued_at=now,
        expires_at=now + timedelta(seconds=60),
        nonce=new_nonce(),
    )
    commands.publish("gate", sign(command, generate_private_key()))
    order = []
    while (item := commands._take()) is not None:
        order.append((item.topic, item.payload, item.retain))
    assert order[0][0] == topics.command("gate", "G-1") and order[0][2] is False
    assert [topic for topic, _, _ in order[1:]] == [
        topics.declared(f"TRK-{n:03d}") for n in range(1, 200)
    ] + [topics.declared("TRK-000")]
    assert order[-1][1] == b"new" and all(retain for _, _, retain in order[1:])

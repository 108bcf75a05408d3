"""Through a real broker and the whole server (`serve`): a gate publishes passages, the
server answers on the gate's command topic with commands that verify against its
public key — within a second; a clean arrival is released, a deviated one held."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from contract import topics
from contract.broker import BrokerSettings
from contract.ids import format_ts, utc_now
from contract.payloads import GateCommand
from contract.signing import (
    CommandVerifier,
    MemoryNonceStore,
    generate_private_key,
    private_key_to_pem,
)
from contract.version import TOPIC_PREFIX
from devtools.broker import MosquittoBroker
from server import judge_marks
from server.app import serve
from server.config import HttpSettings, ServerConfig, StorageSettings
from server.gates.config import GatesSettings
from server.store import Store
from tests.lock_reports import signed_lock_fields, write_lock_secrets
from tests.server.assembled import assemble
from tests.server.conftest import declaration, demo_geography
from tests.server.gates.conftest import LOCK_SECRET, passage_fields

ORIGIN, DEST = "G-HUANGPU-1", "G-BAIYUN-1"
COMMANDS = f"{TOPIC_PREFIX}/gate/+/command"
TRUCKS = {  # declaration → (vehicle, container, plate)
    "D-CLEAN": ("TRK-C", "CSQU3054383", "粤A·C0001"),
    "D-DEVIATED": ("TRK-D", "MSKU1234565", "粤A·D0002"),
}


class Gates:
    """A gate controller's view: publish passages, receive commands."""

    def __init__(self, client: aiomqtt.Client) -> None:
        self.client = client
        self.seq: dict[str, int] = {}
        self.commands: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()

    async def publish(self, channel: str, node: str, topic: str, **fields: Any) -> None:
        self.seq[node] = self.seq.get(node, 0) + 1
        body = {"node_id": node, "seq": self.seq[node], "ts": format_ts(utc_now())} | fields
        await self.client.publish(topic, json.dumps(body).encode(), qos=1)

    async def pump(self) -> None:
        async for message in self.client.messages:
            assert isinstance(message.payload, bytes)
            await self.commands.put((message.topic.value, message.payload))

    async def command_for(self, passage_id: str, within_s: float) -> tuple[str, bytes, float]:
        deadline = time.monotonic() + within_s
        while True:
            topic, payload = await asyncio.wait_for(
                self.commands.get(), max(deadline - time.monotonic(), 0.001)
            )
            if json.loads(payload)["passage_id"] == passage_id:
                return topic, payload, time.monotonic()


@contextlib.asynccontextmanager
async def running_server(config: ServerConfig) -> AsyncIterator[None]:
    ready = asyncio.Event()
    task = asyncio.create_task(serve(config, ready))
    try:
        await asyncio.wait_for(ready.wait(), 20)
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def wait_until(check: Any, within_s: float = 10.0) -> None:
    deadline = time.monotonic() + within_s
    while not await asyncio.to_thread(check):
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


def judged(store: Store, trip_id: str) -> bool:
    """The judge has taken the trip up and judged what the store holds of it."""
    trip = store.get_trip(trip_id)
    assert trip is not None and trip.started_at is not None
    with store.engine.connect() as conn:
        return (
            judge_marks.behind(conn, trip.vehicle_id, trip_id, trip.started_at, utc_now()) is None
        )


@pytest.mark.timeout(60)
async def test_passages_through_the_broker(own_broker: MosquittoBroker, tmp_path: Path) -> None:
    broker = own_broker  # a shared broker's retained messages would count as stored ones
    key = generate_private_key()
    key_file = tmp_path / "server.pem"
    key_file.write_bytes(private_key_to_pem(key))
    db = f"sqlite:///{tmp_path / 'store.db'}"
    run = uuid.uuid4().hex[:8]
    secrets = write_lock_secrets(tmp_path / "lock-secrets.yaml", {"EL-1": LOCK_SECRET})
    config = ServerConfig(
        broker=BrokerSettings(host=broker.host, port=broker.port, client_id=f"srv-{run}"),
        http=HttpSettings(port=0),
        storage=StorageSettings(url=db),
        geography=demo_geography(),
        signing_key_file=key_file,
        gates=GatesSettings(lock_secrets_file=secrets),
    )
    # The declaration system's side: the server's components over the same store.
    svc, _ = assemble(config)
    store = svc.store
    now = utc_now()
    for declaration_id, (vehicle, container, plate) in TRUCKS.items():
        body = declaration(
            declaration_id=declaration_id, vehicle_id=vehicle, plate=plate,
            containers=[container],
        )  # fmt: skip
        store.create_declaration(body, now - timedelta(hours=1))
    async with (
        running_server(config),
        aiomqtt.Client(broker.host, broker.port, identifier=f"gate-{run}") as client,
    ):
        await client.subscribe(COMMANDS, qos=1)
        gate = Gates(client)
        pump = asyncio.create_task(gate.pump())
        try:
            for vehicle, _, _ in TRUCKS.values():
                now = utc_now().replace(microsecond=0)
                signed = signed_lock_fields(LOCK_SECRET, "EL-1", now, "sealed", "sealed", 88)
                await gate.publish(
                    "lock", vehicle, topics.lock(vehicle), ts=format_ts(now), **signed
                )
            await wait_until(lambda: store.message_count() >= 2)
            # departures: each answered within a second by a signed open
            for declaration_id, (_, container, plate) in TRUCKS.items():
                passage_id = f"P-DEP-{declaration_id}"
                sent = time.monotonic()
                await gate.publish("passage", ORIGIN, topics.passage(ORIGIN),
                                   **passage_fields(passage_id, [container], plate))  # fmt: skip
                topic, payload, got = await gate.command_for(passage_id, 5)
                assert got - sent < 1.0, f"command after {got - sent:.3f} s"
                assert topic == topics.command("gate", ORIGIN)
                verifier = CommandVerifier(key.public_key(), ORIGIN, MemoryNonceStore())
                outcome = verifier.verify(GateCommand, payload)
                assert outcome.ok, outcome.detail
                assert isinstance(outcome.command, GateCommand)
                assert outcome.command.action == "open" and outcome.command.reasons == []
                trip = store.get_trip(declaration_id)
                assert trip is not None and trip.status == "in_transit"
            # on their way: each lock's next report, which the judge takes its trip up with
            # (an arrival is decided once the judge has judged the trip: docs/gates.md)
            for vehicle, _, _ in TRUCKS.values():
                now = utc_now().replace(microsecond=0)
                signed = signed_lock_fields(LOCK_SECRET, "EL-1", now, "sealed", "sealed", 89)
                await gate.publish(
                    "lock", vehicle, topics.lock(vehicle), ts=format_ts(now), **signed
                )
            await wait_until(lambda: all(judged(store, d) for d in TRUCKS))
            # the declaration system releases both; one truck left its corridor
            for declaration_id in TRUCKS:
                svc.gates.record_release(declaration_id, f"R-{declaration_id}", utc_now(), False,
                                     "decl-system")  # fmt: skip
            svc.alarms.raise_(
                "D-DEVIATED", "TRK-D", "ROUTE_DEVIATION", "major", utc_now(), (113.4, 23.2),
                "1.2 km off the corridor",
            )  # fmt: skip
            answers: dict[str, GateCommand] = {}
            for declaration_id, (_, container, plate) in TRUCKS.items():
                passage_id = f"P-ARR-{declaration_id}"
                await gate.publish("passage", DEST, topics.passage(DEST),
                                   **passage_fields(passage_id, [container], plate))  # fmt: skip
                topic, payload, _ = await gate.command_for(passage_id, 5)
                verifier = CommandVerifier(key.public_key(), DEST, MemoryNonceStore())
                outcome = verifier.verify(GateCommand, payload)
                assert outcome.ok and isinstance(outcome.command, GateCommand)
                answers[declaration_id] = outcome.command
        finally:
            pump.cancel()
    assert (answers["D-CLEAN"].action, answers["D-CLEAN"].reasons) == ("open", [])
    assert answers["D-DEVIATED"].action == "hold"
    assert answers["D-DEVIATED"].reasons == ["unresolved alarm ROUTE_DEVIATION"]
    statuses = {d: getattr(store.get_trip(d), "status", None) for d in TRUCKS}
    assert statuses == {"D-CLEAN": "released", "D-DEVIATED": "held"}
    store.close()

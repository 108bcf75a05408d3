"""Helpers for the outbox, link and command tests: a persistent subscriber, and the
server's ingest that stores and acknowledges."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from sqlalchemy import select

from contract.broker import BrokerSettings
from devtools.broker import MosquittoBroker
from server.config import IngestSettings
from server.ingest import Ingest
from server.metrics import Metrics
from server.store import Store, schema


class Collector:
    """Subscribes (persistent session, QoS 1) and keeps every message, reconnecting."""

    def __init__(self, broker: MosquittoBroker, topic: str, client_id: str = "collector") -> None:
        self.broker = broker
        self.topic = topic
        self.client_id = client_id
        self.messages: list[tuple[str, dict[str, Any], bool]] = []
        self.subscribed = asyncio.Event()
        self.changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = 3600
            try:
                async with aiomqtt.Client(
                    "127.0.0.1",
                    self.broker.port,
                    identifier=self.client_id,
                    protocol=aiomqtt.ProtocolVersion.V5,
                    clean_start=False,
                    properties=props,
                ) as client:
                    await client.subscribe(self.topic, qos=1)
                    self.subscribed.set()
                    async for msg in client.messages:
                        assert isinstance(msg.payload, bytes)
                        self.messages.append((str(msg.topic), json.loads(msg.payload), msg.retain))
                        self.changed.set()
            except aiomqtt.MqttError:
                await asyncio.sleep(0.1)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run())
        await asyncio.wait_for(self.subscribed.wait(), 10)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def on(self, suffix: str) -> list[dict[str, Any]]:
        return [p for t, p, _ in self.messages if t.endswith("/" + suffix)]

    async def wait_for(self, predicate: Any, within: float = 20.0) -> None:
        async with asyncio.timeout(within):
            while not predicate():
                self.changed.clear()
                await self.changed.wait()


@pytest.fixture
async def collector(own_broker: MosquittoBroker) -> AsyncIterator[Collector]:
    running = Collector(own_broker, "bondwatch/v1/#")
    await running.start()
    yield running
    await running.stop()


def settings_for(broker: MosquittoBroker, **over: Any) -> BrokerSettings:
    fields: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": broker.port,
        "reconnect_min_s": 0.1,
        "reconnect_max_s": 0.5,
    }
    fields.update(over)
    return BrokerSettings(**fields)


class StoringServer:
    """The server's own ingest (`server.ingest.Ingest`) on a SQLite store of its own: it
    stores each (node, seq) once and acknowledges what it committed on `…/ack`."""

    def __init__(self, broker: MosquittoBroker, db: Path, ack_interval_s: float = 0.1) -> None:
        self.store = Store.open(f"sqlite:///{db}")
        self.ingest = Ingest(
            settings_for(broker, client_id="edge-test-server"),
            IngestSettings(batch_wait_ms=5, ack_interval_s=ack_interval_s),
            self.store,
            Metrics(),
            client_id="edge-test-server",
        )
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self.ingest.run())
        await asyncio.wait_for(self.ingest.connected.wait(), 10)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def seqs(self, node_id: str, channel: str | None = None) -> list[int]:
        """Every seq of `node_id` (on `channel`) in the store, in order (the legal record)."""
        table = schema.edge_messages
        with self.store.engine.connect() as conn:
            query = select(table.c.seq).where(table.c.node_id == node_id)
            if channel is not None:
                query = query.where(table.c.channel == channel)
            rows = conn.execute(query.order_by(table.c.seq))
            return [int(r[0]) for r in rows]


@pytest.fixture
async def storing_server(
    own_broker: MosquittoBroker, tmp_path: Path
) -> AsyncIterator[StoringServer]:
    running = StoringServer(own_broker, tmp_path / "server.db")
    await running.start()
    yield running
    await running.stop()
    running.store.close()

"""The gateway's one MQTT connection: drains the store for every node, takes commands and acks.

The gateway is ONE broker account (its `gateway_id`, role `jt808-gateway` in the site
registry) speaking for every node of its device registry. It subscribes to each node's
`command` and `ack` topics (explicit topics: its access list has no wildcard) and drains
the store with the truck agent's rules (`edge.drain`, docs/edge-outbox.md), for many
nodes: the store's order keeps each node's messages in seq order, and a gap an
acknowledgement shows sends that node's messages again. For the trucks of its fleet it
also reads the retained `declared` lists (`edge.jt808.declared`).

A fresh client per connection, so paho's in-memory queue never resends behind our back.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Final

import aiomqtt

from contract import topics
from contract.broker import BrokerSettings
from contract.mqtt_client import make_client
from contract.topics import TopicError
from edge.drain import Drain, message_bytes, raise_if_cancel_swallowed, run_sessions
from edge.jt808.declared import DeclaredLists
from edge.jt808.store import GatewayStore

log = logging.getLogger(__name__)

#: Topics per SUBSCRIBE packet.
SUBSCRIBE_CHUNK: Final = 200
#: After subscribing, how long the broker has to send the retained `declared` lists
#: before a list it did not send again counts as cleared (`DeclaredLists.settle`).
DECLARED_SETTLE_S: Final = 3.0

CommandCallback = Callable[[str, bytes], Awaitable[None]]


class Uplink:
    def __init__(
        self,
        settings: BrokerSettings,
        client_id: str,
        store: GatewayStore,
        nodes: list[str],
        on_command: CommandCallback,
        *,
        declared: DeclaredLists | None = None,
        fleet: list[str] | None = None,
        max_inflight: int = 256,
        ack_timeout_s: float = 10.0,
        replay_after_s: float = 30.0,
        publish_timeout_s: float = 30.0,
        ack_flush_s: float = 0.25,
    ) -> None:
        self.settings = settings
        self.client_id = client_id
        self.store = store
        self.nodes = nodes
        self.on_command = on_command
        #: the trucks' `declared` lists, read for the `fleet`
        self.declared = declared
        self.fleet = list(fleet or []) if declared is not None else []
        self.publish_timeout_s = publish_timeout_s
        self.connected = False
        self.server_acked_total = 0
        self.connections_total = 0
        self.drain = Drain(
            store,
            store.mark_sent_later,  # in order before any later write
            max_inflight=max_inflight,
            replay_after_s=replay_after_s,
            publish_timeout_s=publish_timeout_s,
            ack_timeout_s=ack_timeout_s,
            ack_flush_s=ack_flush_s,
        )
        self._never = asyncio.Event()  # the gateway stops by cancellation
        self._lost = False
        store.add_listener(self.drain.wake.set)

    async def run(self) -> None:
        """Connect, send and receive until cancelled; reconnects with backoff."""
        await run_sessions(
            self._session,
            self.settings,
            who=f"gateway {self.client_id}",
            on_lost=self._log_lost,
            after_session=self._after_session,
            stopping=self._never,
        )

    def _after_session(self) -> None:
        self.connected = False
        self.drain.flush_pubacks()

    def _log_lost(self, err: BaseException) -> None:
        """Log the loss of the broker once, not at every retry."""
        if not self._lost:
            log.warning(
                "gateway %s: broker %s:%d unreachable or lost (%s); retrying, "
                "%d messages kept in the store",
                self.client_id,
                self.settings.host,
                self.settings.port,
                err,
                self.store.counts()[0],
            )
        self._lost = True

    async def _session(self) -> None:
        client = make_client(
            self.settings,
            self.client_id,
            max_inflight_messages=self.drain.max_inflight,
            timeout=self.publish_timeout_s,
        )
        client.pending_calls_threshold = self.drain.max_inflight + 16
        async with client:
            self.connected = True
            self.connections_total += 1
            self.drain.connected_at = time.time()
            if self._lost:
                log.info("gateway %s: broker back", self.client_id)
            self._lost = False
            try:
                async with asyncio.TaskGroup() as group:
                    group.create_task(self._receive(client), name="jt808-mqtt-receive")
                    group.create_task(self.drain.flush_loop(), name="jt808-mqtt-acks")
                    if self.declared is not None:
                        self.declared.begin()
                    for start in range(0, len(self.nodes), SUBSCRIBE_CHUNK):
                        chunk = self.nodes[start : start + SUBSCRIBE_CHUNK]
                        filters = [(topics.command("truck", n), 1) for n in chunk] + [
                            (topics.ack("truck", n), 1) for n in chunk
                        ]
                        await client.subscribe(filters)
                    for start in range(0, len(self.fleet), SUBSCRIBE_CHUNK):
                        chunk = self.fleet[start : start + SUBSCRIBE_CHUNK]
                        await client.subscribe([(topics.declared(n), 1) for n in chunk])
                    if self.declared is not None:
                        group.create_task(self._settle(self.declared), name="jt808-declared")
                    raise_if_cancel_swallowed()
                    log.info(
                        "gateway %s connected: %d nodes, %d messages waiting",
                        self.client_id,
                        len(self.nodes),
                        self.store.counts()[0],
                    )
                    await self.drain.send(client, group, self._never)
            finally:
                self.connected = False

    # -- receiving ------------------------------------------------------------------------

    async def _receive(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            raw = message_bytes(message)
            try:
                info = topics.parse(str(message.topic))
            except TopicError:
                continue
            if info.channel == "ack":
                await self._on_ack(info.node_id, raw)
            elif info.channel == "command":
                try:
                    await self.on_command(info.node_id, raw)
                except Exception:
                    log.exception("node %s: command handler failed", info.node_id)
            elif info.channel == "declared" and self.declared is not None:
                try:
                    self.declared.receive(info.node_id, raw)
                except Exception:
                    log.exception("node %s: declared list handler failed", info.node_id)

    async def _settle(self, declared: DeclaredLists) -> None:
        await asyncio.sleep(DECLARED_SETTLE_S)
        declared.settle()

    async def _on_ack(self, node_id: str, raw: bytes) -> None:
        ack = self.drain.read_ack(raw, node_id)
        if ack is None:
            return
        removed, newest = await self.store.ack_ranges_async(node_id, ack.ranges)
        self.server_acked_total += removed
        self.drain.check_gap(newest, node_id)

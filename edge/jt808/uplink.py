"""The gateway's one MQTT connection: drains the store for every node, takes commands and acks.

The gateway is ONE broker account (its `gateway_id`, role `jt808-gateway` in the site
registry) speaking for every node of its device registry. It subscribes to each node's
`command` and `ack` topics (explicit topics: its access list has no wildcard), publishes
the store in store order (so each node's messages go in seq order) with QoS 1, marks a
message `sent` on the broker's PUBACK, and removes it when the server's acknowledgement
covers it — the truck agent's rules (`edge.link`, docs/edge-outbox.md), for many nodes:

* messages stored before a connection and never taken by the broker go first (backlog),
  while messages stored since go at once, between backlog batches;
* messages the broker took on an earlier connection and still not acknowledged
  `ack_timeout_s` after a reconnect are sent again (the broker may have lost them);
* an acknowledgement that skips older sent messages of its node (a gap: lost by the
  broker) sends those again. The server absorbs duplicates by (node, seq).

A fresh client per connection, so paho's in-memory queue never resends behind our back.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Final

import aiomqtt

from contract import topics
from contract.broker import BrokerSettings
from contract.mqtt_client import make_client
from contract.payloads import Ack, PayloadError, decode
from contract.topics import TopicError
from edge.jt808.store import GatewayItem, GatewayStore
from edge.link import REPLAYABLE_CHANNELS, STABLE_CONNECTION_S, _raise_if_cancel_swallowed

log = logging.getLogger(__name__)

#: Topics per SUBSCRIBE packet.
SUBSCRIBE_CHUNK: Final = 200
#: Messages read from the store per batch of a catch-up pass.
BATCH: Final = 256

CommandCallback = Callable[[str, bytes], Awaitable[None]]


class _Pass:
    """One catch-up pass over the messages stored before a connection, in store order:
    those the broker never took (`sent_before` None), or those it took before then."""

    def __init__(self, up_to: int, due: float, sent_before: float | None = None) -> None:
        self.up_to, self.due, self.sent_before = up_to, due, sent_before
        self.cursor = 0

    def batch(self, store: GatewayStore) -> list[GatewayItem]:
        if self.cursor >= self.up_to or time.monotonic() < self.due:
            return []
        items = store.pending(
            BATCH,
            after_id=self.cursor,
            up_to_id=self.up_to,
            unsent_only=self.sent_before is None,
            sent_before=self.sent_before,
        )
        if not items:
            self.cursor = self.up_to
        return items


class Uplink:
    def __init__(
        self,
        settings: BrokerSettings,
        client_id: str,
        store: GatewayStore,
        nodes: list[str],
        on_command: CommandCallback,
        *,
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
        self.max_inflight = max_inflight
        self.ack_timeout_s = ack_timeout_s
        self.replay_after_s = replay_after_s
        self.publish_timeout_s = publish_timeout_s
        self.ack_flush_s = ack_flush_s
        self.connected = False
        self.published_total = 0
        self.resent_total = 0
        self.server_acked_total = 0
        self.connections_total = 0
        self._wake = asyncio.Event()
        self._acked: list[int] = []
        self._gaps: dict[str, float] = {}
        self._connected_at = 0.0
        self._lost = False
        self._channels: dict[str, str] = {}
        store.add_listener(self._wake.set)

    async def run(self) -> None:
        """Connect, send and receive until cancelled; reconnects with backoff."""
        delay = self.settings.reconnect_min_s
        while True:
            started = time.monotonic()
            try:
                await self._session()
            except* (aiomqtt.MqttError, OSError) as group:
                if not self._lost:
                    log.warning(
                        "gateway %s: broker %s:%d unreachable or lost (%s); retrying, "
                        "%d messages kept in the store",
                        self.client_id,
                        self.settings.host,
                        self.settings.port,
                        group.exceptions[0],
                        self.store.counts()[0],
                    )
                self._lost = True
            except* Exception as group:  # a bug must not end the link: logged loudly
                log.error(
                    "gateway %s: unexpected error in the MQTT link, reconnecting",
                    self.client_id,
                    exc_info=group.exceptions[0],
                )
            finally:
                self.connected = False
                self._flush_acks()
            if time.monotonic() - started > STABLE_CONNECTION_S:
                delay = self.settings.reconnect_min_s
            _raise_if_cancel_swallowed()
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))
            delay = min(delay * 2, self.settings.reconnect_max_s)

    async def _session(self) -> None:
        client = make_client(
            self.settings,
            self.client_id,
            max_inflight_messages=self.max_inflight,
            timeout=self.publish_timeout_s,
        )
        client.pending_calls_threshold = self.max_inflight + 16
        async with client:
            self.connected = True
            self.connections_total += 1
            self._connected_at = time.time()
            if self._lost:
                log.info("gateway %s: broker back", self.client_id)
            self._lost = False
            try:
                async with asyncio.TaskGroup() as group:
                    group.create_task(self._receive(client), name="jt808-mqtt-receive")
                    group.create_task(self._flush_loop(), name="jt808-mqtt-acks")
                    for start in range(0, len(self.nodes), SUBSCRIBE_CHUNK):
                        chunk = self.nodes[start : start + SUBSCRIBE_CHUNK]
                        filters = [(topics.command("truck", n), 1) for n in chunk] + [
                            (topics.ack("truck", n), 1) for n in chunk
                        ]
                        await client.subscribe(filters)
                    _raise_if_cancel_swallowed()
                    log.info(
                        "gateway %s connected: %d nodes, %d messages waiting",
                        self.client_id,
                        len(self.nodes),
                        self.store.counts()[0],
                    )
                    await self._send(client, group)
            finally:
                self.connected = False

    # -- sending --------------------------------------------------------------------------

    def _channel(self, topic: str) -> str:
        channel = self._channels.get(topic)
        if channel is None:
            try:
                channel = topics.parse(topic).channel
            except TopicError:
                channel = ""
            self._channels[topic] = channel
        return channel

    def _wire(self, item: GatewayItem, now: float) -> bytes:
        """The payload to send; flagged `replayed` when it waited through a gap."""
        waited = item.created < self._connected_at or now - item.created > self.replay_after_s
        payload = item.payload
        if not waited or self._channel(item.topic) not in REPLAYABLE_CHANNELS:
            return payload
        if b'"replayed"' not in payload and payload.endswith(b"}"):
            return payload[:-1] + b',"replayed":true}'
        data = json.loads(payload)
        data["replayed"] = True
        return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode("utf-8")

    async def _send(self, client: aiomqtt.Client, group: asyncio.TaskGroup) -> None:
        window = asyncio.Semaphore(self.max_inflight)
        live_floor = self.store.max_id()
        live_cursor = live_floor
        backlog = _Pass(live_floor, time.monotonic())
        resend = _Pass(live_floor, time.monotonic() + self.ack_timeout_s, self._connected_at)

        async def launch(item: GatewayItem, again: bool) -> None:
            await window.acquire()
            if again:
                self.resent_total += 1
            group.create_task(self._publish(client, item, self._wire(item, time.time()), window))

        while True:
            _raise_if_cancel_swallowed()
            self._wake.clear()
            sent = 0
            gaps, self._gaps = self._gaps, {}
            for node_id, cutoff in gaps.items():
                for item in self.store.pending(10_000, sent_before=cutoff, node_id=node_id):
                    await launch(item, True)
                    sent += 1
            for item in self.store.pending(self.max_inflight, after_id=live_cursor):
                await launch(item, False)
                live_cursor = item.id
                sent += 1
            for catch_up in (backlog, resend):
                for item in catch_up.batch(self.store):
                    if self._wake.is_set():
                        break  # something live arrived: serve it first
                    await launch(item, catch_up is resend)
                    catch_up.cursor = item.id
                    sent += 1
            if sent == 0:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(1.0):
                        await self._wake.wait()

    async def _publish(
        self, client: aiomqtt.Client, item: GatewayItem, payload: bytes, window: asyncio.Semaphore
    ) -> None:
        try:
            await client.publish(item.topic, payload, qos=1, retain=item.retain)
        finally:
            window.release()
        self._acked.append(item.id)  # only now has the broker taken it (PUBACK)
        self.published_total += 1
        if len(self._acked) >= 4096:
            self._flush_acks()

    def _flush_acks(self) -> None:
        if self._acked:
            acked, self._acked = self._acked, []
            self.store.mark_sent_later(acked)  # in order before any later write

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(self.ack_flush_s)
            self._flush_acks()

    # -- receiving ------------------------------------------------------------------------

    async def _receive(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            payload = message.payload
            raw = payload if isinstance(payload, bytes) else str(payload).encode("utf-8")
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

    async def _on_ack(self, node_id: str, raw: bytes) -> None:
        try:
            ack = decode(Ack, raw)
        except PayloadError as err:
            log.warning("node %s: unreadable acknowledgement ignored: %s", node_id, err)
            return
        if ack.node_id != node_id:
            log.warning("node %s: acknowledgement for node %s ignored", node_id, ack.node_id)
            return
        self._flush_acks()  # PUBACKs first, so that `sent` never outlives the removal
        removed, newest = await self.store.ack_ranges_async(node_id, ack.ranges)
        self.server_acked_total += removed
        if newest is not None:
            # The server stores a node's messages in the order the broker took them: one
            # taken `ack_timeout_s` before an acknowledged one and still not acknowledged
            # was lost on the way (a broker crash).
            cutoff = newest - self.ack_timeout_s
            if self.store.pending(1, sent_before=cutoff, node_id=node_id):
                self._gaps[node_id] = cutoff
                self._wake.set()

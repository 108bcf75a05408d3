"""The edge's MQTT link: drains the durable outbox to the broker and receives commands.

aiomqtt 2.x leaves reconnecting to the caller (TRAPS.md); this module owns it.
`aiomqtt.Client.publish(qos=1)` returns only after paho's `on_publish`, which paho
calls for QoS 1 when the PUBACK arrives (aiomqtt 2.5 `Client.publish` waits on an
event set from `_on_publish`). A message leaves the outbox only after that await
returned. Several publishes are kept in flight (`max_inflight`); they are handed to
paho in seq order, and paho sends them in that order on the one connection.

A fresh `aiomqtt.Client` is made for every connection so that paho's in-memory
retry queue never resends anything behind our back: the outbox is the only queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import ssl
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from contract import topics
from contract.broker import BrokerSettings
from contract.ids import utc_now
from contract.mqtt_client import NO_DELAY
from contract.payloads import Availability, AvailabilityState
from contract.topics import Kind, TopicError
from edge.outbox import Outbox, OutboxItem
from edge.outbox_settings import OutboxSettings

log = logging.getLogger(__name__)

#: Channels whose payload model has a `replayed` flag (docs/contract.md).
REPLAYABLE_CHANNELS: Final = frozenset({"position", "lock", "passage"})
#: MQTT 5 session expiry, matching the broker's `persistent_client_expiration 30d`.
SESSION_EXPIRY_S: Final = 30 * 24 * 3600
#: A connection that lasted this long resets the reconnect backoff.
STABLE_CONNECTION_S: Final = 10.0

CommandCallback = Callable[[bytes], Awaitable[None]]


class _Stopped(Exception):
    """Internal: a clean stop was requested."""


def _raise_if_cancel_swallowed() -> None:
    """Re-raise a cancellation that Python 3.11's `asyncio.wait_for` lost.

    aiomqtt waits for CONNACK, SUBACK and PUBACK with `asyncio.wait_for`, which in
    3.11 returns normally when the awaited reply and the cancellation arrive in the
    same loop iteration (fixed in 3.12). The request stays counted in
    `Task.cancelling()`, so checking it at the loop's turns ends a lost cancel.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


class MqttLink:
    """One node's connection to the broker.

    `run()` until cancelled or `stop()`: connects (persistent session, client id =
    node id, last will `offline`), publishes retained `online`, subscribes to the
    node's command topic, and sends the outbox in seq order with QoS 1, deleting
    each message only after its PUBACK. Reconnects with exponential backoff.
    """

    def __init__(
        self,
        settings: BrokerSettings,
        kind: Kind,
        node_id: str,
        outbox: Outbox,
        on_command: CommandCallback,
        *,
        max_inflight: int = 64,
        replay_after_s: float = 30.0,
        publish_timeout_s: float = 30.0,
        ack_flush_s: float = 0.25,
    ) -> None:
        if outbox.node_id != node_id:
            raise ValueError(f"outbox belongs to {outbox.node_id}, link is for {node_id}")
        self.settings = settings
        self.kind: Kind = kind
        self.node_id = node_id
        self.outbox = outbox
        self.on_command = on_command
        self.max_inflight = max_inflight
        self.replay_after_s = replay_after_s
        self.publish_timeout_s = publish_timeout_s
        self.ack_flush_s = ack_flush_s
        self.availability_topic = topics.availability(kind, node_id)
        self.command_topic = topics.command(kind, node_id)
        self.connected = False
        #: Counters for health reporting and tests.
        self.published_total = 0
        self.replayed_total = 0
        self.connections_total = 0
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._stopped = asyncio.Event()
        self._acked: list[int] = []
        self._will_seq: int | None = None
        self._connected_at = 0.0
        self._channel_cache: dict[str, str] = {}
        self._lost = False
        self._running = False
        outbox.add_listener(self.notify)

    @classmethod
    def from_settings(
        cls,
        settings: BrokerSettings,
        kind: Kind,
        node_id: str,
        outbox: Outbox,
        on_command: CommandCallback,
        tuning: OutboxSettings,
    ) -> MqttLink:
        """A link tuned by the agent's `outbox:` config block."""
        return cls(
            settings,
            kind,
            node_id,
            outbox,
            on_command,
            max_inflight=tuning.max_inflight,
            replay_after_s=tuning.replay_after_s,
            publish_timeout_s=tuning.publish_timeout_s,
        )

    # -- public ----------------------------------------------------------------

    def notify(self) -> None:
        """Wake the sender: something was enqueued (the outbox calls this itself)."""
        self._wake.set()

    async def stop(self) -> None:
        """Finish in-flight publishes, publish retained `stopped`, disconnect cleanly.

        Returns when `run()` has returned (wrap in `asyncio.timeout` to bound it;
        in-flight publishes are waited for at most `publish_timeout_s`).
        """
        self._stopping.set()
        self._wake.set()
        if self._running:
            await self._stopped.wait()

    async def run(self) -> None:
        """Connect, send and receive until `stop()` or cancellation; reconnects."""
        delay = self.settings.reconnect_min_s
        self._running = True
        self._stopped.clear()
        try:
            while not self._stopping.is_set():
                started = time.monotonic()
                try:
                    await self._session()
                except* (aiomqtt.MqttError, OSError) as group:
                    self._log_lost(group.exceptions[0])
                except* Exception as group:
                    # Years unattended: a bug must not end the link; it is logged loudly.
                    log.error(
                        "node %s: unexpected error in the MQTT link, reconnecting",
                        self.node_id,
                        exc_info=group.exceptions[0],
                    )
                finally:
                    self.connected = False
                    self._flush_acks()
                if self._stopping.is_set():
                    break
                if time.monotonic() - started > STABLE_CONNECTION_S:
                    delay = self.settings.reconnect_min_s
                pause = delay * random.uniform(0.8, 1.2)
                delay = min(delay * 2, self.settings.reconnect_max_s)
                _raise_if_cancel_swallowed()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(pause):
                        await self._stopping.wait()
        finally:
            self.connected = False
            self._flush_acks()
            self._running = False
            self._stopped.set()

    def _log_lost(self, err: BaseException) -> None:
        """Log the loss of the broker once, not at every retry."""
        if self._lost:
            log.debug("node %s: still no broker: %s", self.node_id, err)
            return
        self._lost = True
        log.warning(
            "node %s: broker %s:%d unreachable or connection lost (%s); retrying with "
            "backoff up to %.0f s, %d messages kept in the outbox",
            self.node_id,
            self.settings.host,
            self.settings.port,
            err,
            self.settings.reconnect_max_s,
            self.outbox.stats().count,
        )

    # -- one connection ------------------------------------------------------------

    def _availability(self, state: AvailabilityState, seq: int) -> bytes:
        return Availability(node_id=self.node_id, seq=seq, ts=utc_now(), state=state).to_json()

    def _client(self) -> aiomqtt.Client:
        s = self.settings
        if self._will_seq is None:
            self._will_seq = self.outbox.reserve_seq("will offline")
        will = aiomqtt.Will(
            self.availability_topic, self._availability("offline", self._will_seq), 1, True
        )
        tls_params = None
        if s.tls:
            tls_params = aiomqtt.TLSParameters(
                ca_certs=str(s.ca_file) if s.ca_file else None,
                certfile=str(s.cert_file) if s.cert_file else None,
                keyfile=str(s.key_file) if s.key_file else None,
                cert_reqs=ssl.CERT_REQUIRED,
            )
        common: dict[str, Any] = {
            "hostname": s.host,
            "port": s.port,
            "identifier": s.client_id or self.node_id,
            "username": s.username,
            "password": s.password(),
            "will": will,
            "keepalive": s.keepalive_s,
            "timeout": self.publish_timeout_s,
            "max_inflight_messages": self.max_inflight,
            "tls_params": tls_params,
            # PUBLISH packets are small: without TCP_NODELAY, Nagle's algorithm holds
            # them back while the peer delays its ACK, throttling a backlog drain.
            "socket_options": NO_DELAY,
        }
        if s.protocol == "5":
            props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            props.SessionExpiryInterval = SESSION_EXPIRY_S
            client = aiomqtt.Client(
                protocol=aiomqtt.ProtocolVersion.V5,
                clean_start=False,
                properties=props,
                **common,
            )
        else:
            client = aiomqtt.Client(
                protocol=aiomqtt.ProtocolVersion.V311, clean_session=False, **common
            )
        # aiomqtt warns above 10 pending publishes; we keep up to max_inflight on purpose.
        client.pending_calls_threshold = self.max_inflight + 16
        return client

    async def _session(self) -> None:
        client = self._client()
        async with client:
            self.connected = True
            self.connections_total += 1
            self._connected_at = time.time()
            # From now on the broker may publish this will; the next one needs a new seq.
            self._will_seq = None
            self._lost = False
            log.info(
                "node %s connected to %s:%d, %d messages waiting",
                self.node_id,
                self.settings.host,
                self.settings.port,
                self.outbox.stats().count,
            )
            try:
                await self._serve(client)
            except asyncio.CancelledError:
                # Cancelled instead of stop(): the clean DISCONNECT on the way out
                # suppresses the will, so say `stopped` ourselves, briefly.
                self._flush_acks()
                with contextlib.suppress(aiomqtt.MqttError, TimeoutError):
                    async with asyncio.timeout(2.0):
                        await self._publish_state(client, "stopped")
                raise
            finally:
                self.connected = False

    async def _serve(self, client: aiomqtt.Client) -> None:
        """Send, receive and flush acks on one connection until stop or failure."""
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._receive(client), name="mqtt-commands")
                tg.create_task(self._flush_loop(), name="outbox-acks")
                # The receiver is already watching: aiomqtt's waits for SUBACK and
                # PUBACK do not notice a dropped connection, its message iterator does.
                await self._publish_state(client, "online")
                await client.subscribe(self.command_topic, qos=1)
                _raise_if_cancel_swallowed()
                await self._send(client, tg)
                # Stop requested: _send returned once nothing is in flight.
                self._flush_acks()
                await self._publish_state(client, "stopped")
                raise _Stopped
        except* _Stopped:
            log.info("node %s: link stopped cleanly", self.node_id)

    async def _publish_state(self, client: aiomqtt.Client, state: AvailabilityState) -> None:
        seq = self.outbox.reserve_seq(f"availability {state}")
        await client.publish(
            self.availability_topic, self._availability(state, seq), qos=1, retain=True
        )

    # -- sending -----------------------------------------------------------------------

    def _channel(self, topic: str) -> str:
        channel = self._channel_cache.get(topic)
        if channel is None:
            try:
                channel = topics.parse(topic).channel
            except TopicError:
                channel = ""
            self._channel_cache[topic] = channel
        return channel

    def _wire(self, item: OutboxItem, now: float) -> bytes:
        """The payload to send; flagged `replayed` when it waited through a gap."""
        waited = item.created < self._connected_at or now - item.created > self.replay_after_s
        if not waited or self._channel(item.topic) not in REPLAYABLE_CHANNELS:
            return item.payload
        self.replayed_total += 1
        payload = item.payload
        if b'"replayed"' not in payload and payload.endswith(b"}"):
            # The outbox wrote a compact JSON object: append the flag without re-parsing.
            return payload[:-1] + b',"replayed":true}'
        data = json.loads(payload)
        data["replayed"] = True
        return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode("utf-8")

    async def _send(self, client: aiomqtt.Client, tg: asyncio.TaskGroup) -> None:
        """Hand the outbox to paho in order until a stop is requested.

        Messages stored before this connection (the backlog) go oldest first;
        messages enqueued since (live) are sent as soon as they arrive, between
        backlog batches, so a long replay does not hold up the present.
        """
        window = asyncio.Semaphore(self.max_inflight)
        inflight: set[asyncio.Task[None]] = set()
        live_floor = self.outbox.last_seq()
        backlog_cursor = 0
        live_cursor = live_floor

        async def launch(item: OutboxItem) -> None:
            await window.acquire()
            payload = self._wire(item, time.time())
            task = tg.create_task(self._publish(client, item, payload, window))
            inflight.add(task)
            task.add_done_callback(inflight.discard)

        while not self._stopping.is_set():
            _raise_if_cancel_swallowed()
            self._wake.clear()
            sent = 0
            for item in self.outbox.pending(self.max_inflight, after_id=live_cursor):
                await launch(item)
                live_cursor = item.id
                sent += 1
            if backlog_cursor < live_floor:
                batch = self.outbox.pending(256, after_id=backlog_cursor, up_to_id=live_floor)
                if not batch:
                    backlog_cursor = live_floor
                for item in batch:
                    if self._wake.is_set() or self._stopping.is_set():
                        break  # something live arrived: serve it first
                    await launch(item)
                    backlog_cursor = item.id
                    sent += 1
            if sent == 0:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(1.0):
                        await self._wake.wait()
        if inflight:
            await asyncio.wait(list(inflight), timeout=self.publish_timeout_s)

    async def _publish(
        self,
        client: aiomqtt.Client,
        item: OutboxItem,
        payload: bytes,
        window: asyncio.Semaphore,
    ) -> None:
        try:
            await client.publish(item.topic, payload, qos=1, retain=item.retain)
        finally:
            window.release()
        # Only here has the broker acknowledged (PUBACK) this very message.
        self._acked.append(item.id)
        self.published_total += 1
        if len(self._acked) >= 4096:
            self._flush_acks()

    def _flush_acks(self) -> None:
        if not self._acked:
            return
        acked, self._acked = self._acked, []
        self.outbox.ack_many(acked)

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(self.ack_flush_s)
            self._flush_acks()

    # -- receiving ---------------------------------------------------------------------

    async def _receive(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            payload = message.payload
            if isinstance(payload, str):
                raw = payload.encode("utf-8")
            elif isinstance(payload, bytes | bytearray):
                raw = bytes(payload)
            else:
                raw = json.dumps(payload).encode("utf-8")
            try:
                await self.on_command(raw)
            except Exception:
                log.exception(
                    "node %s: command handler failed on a message of %d bytes on %s",
                    self.node_id,
                    len(raw),
                    message.topic,
                )

"""The edge's MQTT link: drains the durable outbox to the broker and receives commands.

aiomqtt 2.x leaves reconnecting to the caller (TRAPS.md); this module owns it.
`aiomqtt.Client.publish(qos=1)` returns only after paho's `on_publish`, which paho
calls for QoS 1 when the PUBACK arrives (aiomqtt 2.5 `Client.publish` waits on an
event set from `_on_publish`). The PUBACK only marks a message `sent`: the broker keeps
its queue in memory between autosaves, so a broker crash loses what it had taken. A
message leaves the outbox when the server's acknowledgement (topic `…/ack`, sent after
the server's commit) covers it; what was sent on an earlier connection and is still not
acknowledged `ack_timeout_s` after a reconnect is sent again. Several publishes are kept
in flight (`max_inflight`); they are handed to paho in seq order, and paho sends them in
that order on the one connection.

A fresh `aiomqtt.Client` is made for every connection so that paho's in-memory
retry queue never resends anything behind our back: the outbox is the only queue.
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
from contract.ids import utc_now
from contract.log_throttle import LogThrottle, and_more
from contract.mqtt_client import make_client
from contract.payloads import Ack, Availability, AvailabilityState, PayloadError, decode
from contract.topics import Kind, TopicError
from edge.outbox import Outbox, OutboxItem
from edge.outbox_settings import OutboxSettings

log = logging.getLogger(__name__)

#: Channels whose payload model has a `replayed` flag (docs/contract.md).
REPLAYABLE_CHANNELS: Final = frozenset({"position", "lock", "passage"})
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
        ack_timeout_s: float = 10.0,
        ack_fallback_s: float | None = 300.0,
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
        self.ack_timeout_s = ack_timeout_s
        self.ack_fallback_s = ack_fallback_s
        self.availability_topic = topics.availability(kind, node_id)
        self.command_topic = topics.command(kind, node_id)
        self.ack_topic = topics.ack(kind, node_id)
        self.connected = False
        #: Counters for health reporting and tests.
        self.published_total = 0
        self.replayed_total = 0
        self.connections_total = 0
        #: Messages removed by the server's acknowledgement, and messages sent again
        #: because none came within `ack_timeout_s` of a reconnect.
        self.server_acked_total = 0
        self.resent_total = 0
        #: Acknowledgements ignored, by reason (a contract reason, or `wrong_node`).
        self.acks_ignored: dict[str, int] = {}
        self._ack_log = LogThrottle()
        #: True while the server never acknowledged and the PUBACK ends a message's life.
        self.puback_fallback = False
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._stopped = asyncio.Event()
        #: Seqs the broker took (PUBACK) and the wall time of the first of them.
        self._acked: list[int] = []
        self._unacked_since: float | None = None
        #: Set by an acknowledgement that skipped older sent messages: resend those
        #: sent before this wall time (a gap: the broker lost them).
        self._gap_before: float | None = None
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
            ack_timeout_s=tuning.ack_timeout_s,
            ack_fallback_s=tuning.ack_fallback_s,
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
        # The one client factory of edge and server: persistent session, TLS, no Nagle.
        client = make_client(
            s,
            self.node_id,
            will=will,
            timeout=self.publish_timeout_s,
            max_inflight_messages=self.max_inflight,
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
                await client.subscribe(self.ack_topic, qos=1)
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

        Messages stored before this connection and never taken by the broker (the
        backlog) go oldest first; messages enqueued since (live) are sent as soon as
        they arrive, between backlog batches, so a long replay does not hold up the
        present. Messages the broker took on an earlier connection wait
        `ack_timeout_s` for the server's acknowledgement (queued for this node while it
        was away); whatever is still unacknowledged then is sent again, oldest first,
        also between live messages.
        """
        window = asyncio.Semaphore(self.max_inflight)
        inflight: set[asyncio.Task[None]] = set()
        live_floor = self.outbox.last_seq()
        live_cursor = live_floor
        backlog = _Pass(live_floor, time.monotonic())
        resend = _Pass(live_floor, time.monotonic() + self.ack_timeout_s, self._connected_at)

        async def launch(item: OutboxItem, again: bool) -> None:
            await window.acquire()
            payload = self._wire(item, time.time())
            if again:
                self.resent_total += 1
            task = tg.create_task(self._publish(client, item, payload, window))
            inflight.add(task)
            task.add_done_callback(inflight.discard)

        while not self._stopping.is_set():
            _raise_if_cancel_swallowed()
            self._wake.clear()
            self._check_fallback()
            if self._gap_before is not None:
                before = max(self._gap_before, resend.sent_before or 0.0)
                if resend.cursor >= resend.up_to or time.monotonic() >= resend.due:
                    resend = _Pass(self.outbox.last_seq(), time.monotonic(), before)
                self._gap_before = None
            sent = 0
            for item in self.outbox.pending(self.max_inflight, after_id=live_cursor):
                await launch(item, False)
                live_cursor = item.id
                sent += 1
            for catch_up in (backlog, resend):
                for item in catch_up.batch(self.outbox, self.puback_fallback):
                    if self._wake.is_set() or self._stopping.is_set():
                        break  # something live arrived: serve it first
                    await launch(item, catch_up is resend)
                    catch_up.cursor = item.id
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
        if self._unacked_since is None:
            self._unacked_since = time.time()
        self._acked.append(item.id)
        self.published_total += 1
        if len(self._acked) >= 4096:
            self._flush_acks()

    def _flush_acks(self) -> None:
        """Record the broker's PUBACKs: `sent` (or, in the fallback, the end)."""
        if not self._acked:
            return
        acked, self._acked = self._acked, []
        if self.puback_fallback:
            self.outbox.ack_many(acked)
        else:
            self.outbox.mark_sent(acked)

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(self.ack_flush_s)
            self._flush_acks()

    # -- the server's acknowledgement ----------------------------------------------------

    def _on_ack(self, raw: bytes) -> None:
        """Remove what the server says it has stored."""
        try:
            ack = decode(Ack, raw)
        except PayloadError as err:
            self._ignore_ack(err.reason, f"unreadable acknowledgement ignored: {err}")
            return
        if ack.node_id != self.node_id:
            self._ignore_ack("wrong_node", f"acknowledgement for node {ack.node_id} ignored")
            return
        self._flush_acks()  # PUBACKs first, so that `sent` never outlives the removal
        if self.puback_fallback:
            self.puback_fallback = False
            log.info(
                "node %s: the server acknowledges stored messages again: messages are "
                "kept until it does",
                self.node_id,
            )
        self.server_acked_total += self.outbox.ack_ranges(ack.ranges)
        self._unacked_since = None
        newest = self.outbox.newest_acked_sent
        if newest is not None:
            # The server stores a node's messages in the order the broker took them:
            # one taken `ack_timeout_s` before an acknowledged one and still not
            # acknowledged was lost on the way (a broker crash, a dropped session).
            cutoff = newest - self.ack_timeout_s
            if self.outbox.pending(1, sent_before=cutoff):
                self._gap_before = cutoff
                self._wake.set()

    def _ignore_ack(self, reason: str, text: str) -> None:
        """Counted by reason; logged at most once per reason a minute (a flood of bad
        acknowledgements must not write the log full)."""
        self.acks_ignored[reason] = self.acks_ignored.get(reason, 0) + 1
        left_out = self._ack_log.admit(reason)
        if left_out is not None:
            more = and_more(left_out, self._ack_log.window_s)
            log.warning("node %s: %s%s", self.node_id, text[:300], more)

    def _check_fallback(self) -> None:
        """A server that never acknowledged (an older one): after `ack_fallback_s`,
        the broker's PUBACK ends a message's life again, with a warning."""
        since = self._unacked_since
        if (
            self.puback_fallback
            or self.ack_fallback_s is None
            or since is None
            or time.time() - since < self.ack_fallback_s
            or self.outbox.server_acknowledges()
        ):
            return
        self.puback_fallback = True
        self._flush_acks()
        dropped = self.outbox.forget_sent()
        log.warning(
            "node %s: no acknowledgement from the server in %.0f s and never one before: "
            "it is probably older than this agent. Messages now leave the outbox on the "
            "broker's PUBACK (%d removed): a broker crash can lose what it holds until the "
            "server acknowledges (docs/edge-outbox.md#server-acknowledgement)",
            self.node_id,
            self.ack_fallback_s,
            dropped,
        )

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
            if message.topic.matches(self.ack_topic):
                self._on_ack(raw)
                continue
            try:
                await self.on_command(raw)
            except Exception:
                log.exception(
                    "node %s: command handler failed on a message of %d bytes on %s",
                    self.node_id,
                    len(raw),
                    message.topic,
                )


class _Pass:
    """One catch-up pass over the messages stored before a connection, in seq order.

    The backlog pass (`sent_before` None) takes those the broker never took, at once;
    the resend pass those it took before the connection, from `due` (monotonic time).
    """

    def __init__(self, up_to: int, due: float, sent_before: float | None = None) -> None:
        self.up_to = up_to
        self.due = due
        self.sent_before = sent_before
        self.cursor = 0

    def batch(self, outbox: Outbox, fallback: bool) -> list[OutboxItem]:
        if self.cursor >= self.up_to or time.monotonic() < self.due:
            return []
        if self.sent_before is not None and fallback:
            self.cursor = self.up_to  # in the fallback, the PUBACK was the end
            return []
        batch = outbox.pending(
            256,
            after_id=self.cursor,
            up_to_id=self.up_to,
            unsent_only=self.sent_before is None,
            sent_before=self.sent_before,
        )
        if not batch:
            self.cursor = self.up_to
        return batch

"""The edge's MQTT link: drains the durable outbox to the broker and receives commands.

The rules of sending, resending and the server's acknowledgement (topic `…/ack`, sent
after the server's commit) are `edge.drain`'s, shared with the JT/T 808 gateway.
`aiomqtt.Client.publish(qos=1)` returns only after paho's `on_publish`, which paho
calls for QoS 1 when the PUBACK arrives (aiomqtt 2.5 `Client.publish` waits on an
event set from `_on_publish`).

A fresh `aiomqtt.Client` is made for every connection so that paho's in-memory
retry queue never resends anything behind our back: the outbox is the only queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

import aiomqtt

from contract import topics
from contract.broker import BrokerSettings
from contract.ids import utc_now
from contract.mqtt_client import make_client
from contract.payloads import Availability, AvailabilityState
from contract.topics import Kind
from edge.drain import Drain, message_bytes, raise_if_cancel_swallowed, run_sessions
from edge.outbox import Outbox
from edge.outbox_settings import OutboxSettings

log = logging.getLogger(__name__)

CommandCallback = Callable[[bytes], Awaitable[None]]


class _Stopped(Exception):
    """Internal: a clean stop was requested."""


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
        self.publish_timeout_s = publish_timeout_s
        self.ack_fallback_s = ack_fallback_s
        self.availability_topic = topics.availability(kind, node_id)
        self.command_topic = topics.command(kind, node_id)
        self.ack_topic = topics.ack(kind, node_id)
        self.connected = False
        self.connections_total = 0
        #: Messages removed by the server's acknowledgement.
        self.server_acked_total = 0
        self.drain = Drain(
            outbox,
            self._record_pubacks,
            max_inflight=max_inflight,
            replay_after_s=replay_after_s,
            publish_timeout_s=publish_timeout_s,
            ack_timeout_s=ack_timeout_s,
            ack_flush_s=ack_flush_s,
        )
        self._stopping = asyncio.Event()
        self._stopped = asyncio.Event()
        self._will_seq: int | None = None
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

    @property
    def max_inflight(self) -> int:
        return self.drain.max_inflight

    @property
    def published_total(self) -> int:
        return self.drain.published_total

    @property
    def replayed_total(self) -> int:
        return self.drain.replayed_total

    @property
    def resent_total(self) -> int:
        """Messages sent again: unacknowledged `ack_timeout_s` after a reconnect, or
        skipped by an acknowledgement."""
        return self.drain.resent_total

    @property
    def acks_ignored(self) -> dict[str, int]:
        """Acknowledgements ignored, by reason (a contract reason, or `wrong_node`)."""
        return self.drain.acks_ignored

    @property
    def puback_fallback(self) -> bool:
        """True while the server never acknowledged and the PUBACK ends a message's life."""
        return self.drain.puback_fallback

    def notify(self) -> None:
        """Wake the sender: something was enqueued (the outbox calls this itself)."""
        self.drain.wake.set()

    async def stop(self) -> None:
        """Finish in-flight publishes, publish retained `stopped`, disconnect cleanly.

        Returns when `run()` has returned (wrap in `asyncio.timeout` to bound it;
        in-flight publishes are waited for at most `publish_timeout_s`).
        """
        self._stopping.set()
        self.drain.wake.set()
        if self._running:
            await self._stopped.wait()

    async def run(self) -> None:
        """Connect, send and receive until `stop()` or cancellation; reconnects."""
        self._running = True
        self._stopped.clear()
        try:
            await run_sessions(
                self._session,
                self.settings,
                who=f"node {self.node_id}",
                on_lost=self._log_lost,
                after_session=self._after_session,
                stopping=self._stopping,
            )
        finally:
            self._after_session()
            self._running = False
            self._stopped.set()

    def _after_session(self) -> None:
        self.connected = False
        self.drain.flush_pubacks()

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

    def _record_pubacks(self, ids: list[int]) -> None:
        """The broker's PUBACKs: `sent` (or, in the fallback, the end)."""
        if self.drain.puback_fallback:
            self.outbox.ack_many(ids)
        else:
            self.outbox.mark_sent(ids)

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
            max_inflight_messages=self.drain.max_inflight,
        )
        # aiomqtt warns above 10 pending publishes; we keep up to max_inflight on purpose.
        client.pending_calls_threshold = self.max_inflight + 16
        return client

    async def _session(self) -> None:
        client = self._client()
        async with client:
            self.connected = True
            self.connections_total += 1
            self.drain.connected_at = time.time()
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
                self.drain.flush_pubacks()
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
                tg.create_task(self.drain.flush_loop(), name="outbox-acks")
                # The receiver is already watching: aiomqtt's waits for SUBACK and
                # PUBACK do not notice a dropped connection, its message iterator does.
                await self._publish_state(client, "online")
                await client.subscribe(self.command_topic, qos=1)
                await client.subscribe(self.ack_topic, qos=1)
                raise_if_cancel_swallowed()
                await self.drain.send(client, tg, self._stopping, self._check_fallback)
                # Stop requested: the drain returned once nothing is in flight.
                self.drain.flush_pubacks()
                await self._publish_state(client, "stopped")
                raise _Stopped
        except* _Stopped:
            log.info("node %s: link stopped cleanly", self.node_id)

    async def _publish_state(self, client: aiomqtt.Client, state: AvailabilityState) -> None:
        seq = self.outbox.reserve_seq(f"availability {state}")
        await client.publish(
            self.availability_topic, self._availability(state, seq), qos=1, retain=True
        )

    # -- the server's acknowledgement ----------------------------------------------------

    def _on_ack(self, raw: bytes) -> None:
        """Remove what the server says it has stored."""
        ack = self.drain.read_ack(raw, self.node_id)
        if ack is None:
            return
        if self.drain.puback_fallback:
            self.drain.puback_fallback = False
            log.info(
                "node %s: the server acknowledges stored messages again: messages are "
                "kept until it does",
                self.node_id,
            )
        self.server_acked_total += self.outbox.ack_ranges(ack.ranges)
        self.drain.check_gap(self.outbox.newest_acked_sent)

    def _check_fallback(self) -> None:
        """A server that never acknowledged (an older one): after `ack_fallback_s`,
        the broker's PUBACK ends a message's life again, with a warning."""
        since = self.drain.unacked_since
        if (
            self.drain.puback_fallback
            or self.ack_fallback_s is None
            or since is None
            or time.time() - since < self.ack_fallback_s
            or self.outbox.server_acknowledges()
        ):
            return
        self.drain.puback_fallback = True
        self.drain.flush_pubacks()
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
            raw = message_bytes(message)
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

"""MQTT ingest: validate every edge message, store each (node, seq) once, then hand on.

A message is acknowledged to the broker (QoS 1 PUBACK) only after the store has
committed it, so a crash of the server loses nothing: the broker redelivers what was
not acknowledged, and the store's (node, seq) key absorbs the repeat. aiomqtt 2.x
does not expose manual acknowledgement, so it is switched on in the paho client it
wraps (`manual_ack_set`, paho-mqtt 2.x).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import aiomqtt
from paho.mqtt.client import Client as PahoClient
from paho.mqtt.client import MQTTMessage

from contract import topics
from contract.broker import DEFAULT_SERVER_CLIENT_ID, BrokerSettings
from contract.ids import format_ts, utc_now
from contract.log_throttle import LogThrottle, and_more
from contract.mqtt_client import make_client
from contract.mqtt_receive import acknowledge, deliver_to
from contract.payloads import EDGE_PAYLOADS, Availability, PayloadError, decode_edge
from server.acks import AckBatcher
from server.config import IngestSettings
from server.metrics import Metrics
from server.store import Store
from server.store.database import IncomingMessage
from server.store.dead_letters import DeadLetter, DeadLetters

log = logging.getLogger(__name__)

FreshHandler = Callable[[Sequence[IncomingMessage]], Awaitable[None]]
#: Stores a batch, each (node, seq) once, and returns the messages that were new.
Writer = Callable[[Sequence[IncomingMessage]], list[IncomingMessage]]


#: Unacknowledged messages the broker may send the ingest, in batches (`receive_window`).
RECEIVE_WINDOW_BATCHES = 4
#: MQTT 5's largest Receive Maximum (OASIS MQTT 5.0, §3.1.2.11.3: a two-byte integer).
MAX_RECEIVE_MAXIMUM = 65_535


def receive_window(batch_max: int) -> int:
    """The Receive Maximum the ingest asks the broker for (MQTT 5; Mosquitto holds an
    MQTT 3.1.1 client to its `max_inflight_messages`). A message is acknowledged only
    once its batch is committed; with a window of one batch, the broker stops sending
    while a batch is written and waits for its PUBACKs — the ingest idles for a commit
    and a round trip in every batch. Several batches in flight keep the socket full
    while one is written."""
    return min(max(batch_max * RECEIVE_WINDOW_BATCHES, 100), MAX_RECEIVE_MAXIMUM)


#: `ts` this far ahead of the receive time is refused unless configured otherwise.
DEFAULT_MAX_AHEAD = timedelta(seconds=120)


@dataclass(frozen=True, slots=True)
class Rejected:
    """A refused edge message, as `Ingest(on_rejected=…)` hooks see it. `reason` is one of
    `contract.limits.REJECT_REASONS`; topic parts are None when the topic did not parse;
    `device_ts` is the payload's own `ts` when it was read (`clock_ahead`)."""

    channel: str | None
    node_id: str | None
    kind: str | None
    reason: str
    detail: str
    received_at: datetime
    device_ts: datetime | None = None


#: The name `validate`'s refusals had before they carried their topic and times.
Rejection = Rejected
#: A hook called with every refused message (a failing hook is logged, never fatal).
RejectHook = Callable[[Rejected], None]

#: `internal` refusals (bugs) are logged with their traceback once a minute per kind.
_internal_log = LogThrottle()


def validate(
    topic: str,
    payload: bytes,
    received_at: datetime | None = None,
    max_ahead: timedelta = DEFAULT_MAX_AHEAD,
) -> IncomingMessage | Rejected:
    """Turn one MQTT message into an `IncomingMessage`, or say why it is refused.

    Never raises: a failure of the server's own code refuses the message as `internal`
    (logged with its traceback) instead of stopping the ingest."""
    received_at = received_at or utc_now()
    try:
        return _validate(topic, payload, received_at, max_ahead)
    except Exception as err:
        kind, node_id, channel = _topic_parts(topic)
        left_out = _internal_log.admit((type(err).__name__, node_id))
        if left_out is not None:
            log.exception(
                "refusing a message on %s: the server failed on it%s",
                topic[:256],
                and_more(left_out, _internal_log.window_s),
            )
        detail = f"{type(err).__name__}: {err}"[:500]
        return Rejected(channel, node_id, kind, "internal", detail, received_at)


def _validate(
    topic: str, payload: bytes, received_at: datetime, max_ahead: timedelta
) -> IncomingMessage | Rejected:
    try:
        info = topics.parse(topic)
    except topics.TopicError as err:
        return Rejected(None, None, None, "bad_topic", str(err)[:500], received_at)
    if info.channel not in EDGE_PAYLOADS:
        detail = f"{topic} is a server→edge topic"
        return Rejected(info.channel, info.node_id, info.kind, "bad_topic", detail, received_at)
    try:
        message = decode_edge(info.channel, payload, node_id=info.node_id)
    except PayloadError as err:
        return Rejected(info.channel, info.node_id, info.kind, err.reason, str(err), received_at)
    if message.ts > received_at + max_ahead:
        ahead = (message.ts - received_at).total_seconds()
        detail = f"ts {format_ts(message.ts)} is {ahead:.0f} s ahead of the server's clock"
        return Rejected(
            info.channel, info.node_id, info.kind, "clock_ahead", detail, received_at, message.ts
        )
    raw = payload.decode("utf-8")
    if (
        isinstance(message, Availability)
        and message.state == "offline"
        and message.ts < received_at
    ):
        # `offline` is the last will: the gateway composes it when it connects (its `ts`
        # and `seq` are then) and the broker publishes it when the connection is lost.
        # The event is the loss, so it is timed by its arrival; judged at the
        # connect time it would come before the trip's start or before the very
        # messages of that connection, and they would clear it again.
        message = message.model_copy(update={"ts": received_at})
        raw = message.to_json().decode("utf-8")
    return IncomingMessage(
        channel=info.channel, message=message, raw=raw, received_at=received_at, kind=info.kind
    )


def count_rejected(metrics: Metrics, channel: str, reason: str) -> None:
    """Count a refused message (also for a child process's ingest, relayed)."""
    metrics.inc("bondwatch_ingest_messages_total", outcome="rejected", reason=reason)
    metrics.inc("bondwatch_ingest_rejected_total", channel=channel, reason=reason)


def _topic_parts(topic: str) -> tuple[str | None, str | None, str | None]:
    """(kind, node id, channel) of a topic, as far as it parses; never raises."""
    try:
        info = topics.parse(topic)
    except Exception:
        return None, None, None
    return info.kind, info.node_id, info.channel


def _broker_lost(raised: Exception) -> aiomqtt.MqttError:
    """The MqttError that ended a session; anything else is re-raised."""
    if isinstance(raised, aiomqtt.MqttError):
        return raised
    assert isinstance(raised, ExceptionGroup)
    mqtt, rest = raised.split(aiomqtt.MqttError)
    if rest is not None or mqtt is None:
        raise raised
    first: BaseException = mqtt
    while isinstance(first, BaseExceptionGroup):
        first = first.exceptions[0]
    assert isinstance(first, aiomqtt.MqttError)
    return first


class Ingest:
    """Subscribes, validates, stores in batches, acknowledges, and calls the handlers."""

    def __init__(
        self,
        broker: BrokerSettings,
        settings: IngestSettings,
        store: Store,
        metrics: Metrics,
        handlers: Sequence[FreshHandler] = (),
        client_id: str = DEFAULT_SERVER_CLIENT_ID,
        passages: bool | None = None,
        writer: Writer | None = None,
        on_rejected: Sequence[RejectHook] = (),
    ) -> None:
        """`passages`: None takes every edge channel; True only gate passages, False
        all but them (`topics.server_subscriptions`): the server runs one Ingest of
        each so that a passage is decided at once even behind a position backlog.
        `writer` stores each batch (by default `store.store_messages`); messages are
        acknowledged once it returns. `on_rejected`: called with every refused message
        (which is acknowledged too, counted, logged at most once a minute per node and
        reason, and kept as a dead letter)."""
        self._broker = broker
        self._settings = settings
        self._store = store
        self._write: Writer = writer or store.store_messages
        self._metrics = metrics
        self._handlers = list(handlers)
        self._client_id = client_id
        self._passages = passages
        #: Received and validated, waiting for the writer: (message, packet id, QoS). A
        #: deque and an event: an `asyncio.Queue` cost 4 % of the ingest's time.
        self._received: deque[tuple[IncomingMessage | DeadLetter | None, int, int]] = deque()
        self._arrived = asyncio.Event()
        self._on_rejected = list(on_rejected)
        self._max_ahead = timedelta(seconds=settings.max_clock_ahead_s)
        self._dead_letters = DeadLetters(store.engine, settings.dead_letters_max)
        self._reject_log = LogThrottle()
        # SQLite: each batch is written in the event loop's own thread, not a worker
        # thread. SQLite's one writer lock is held while the batch is written, and
        # sqlite3 lets go of the interpreter lock at every row; a worker thread then
        # waits up to the switch interval (5 ms) to get it back from this thread, which
        # goes on parsing messages, row after row — with every other writer (a gate
        # decision) waiting behind the lock (a 600-row batch: 35 ms p50, 90 ms p90).
        # A local file write takes a few ms. PostgreSQL: writers do not exclude each
        # other, and a write over the network must not stall the loop (the REST API).
        self._write_inline = store.engine.dialect.name == "sqlite"
        self.connected = asyncio.Event()
        #: Seqs committed and not yet acknowledged to their nodes (kept across sessions).
        self._acks = AckBatcher()
        metrics.describe("bondwatch_ingest_messages_total", "edge messages by outcome")
        metrics.describe(
            "bondwatch_ingest_rejected_total", "edge messages refused, by channel and reason"
        )
        metrics.describe("bondwatch_ingest_acks_total", "acknowledgements published to edge nodes")

    async def run(self) -> None:
        """Connect, reconnecting with backoff, until cancelled."""
        delay = self._broker.reconnect_min_s
        while True:
            try:
                await self._session()
            except (aiomqtt.MqttError, ExceptionGroup) as raised:
                # Python 3.11's TaskGroup wraps an error of the message loop in an
                # ExceptionGroup: a lost broker arrives here as a group of MqttErrors.
                err = _broker_lost(raised)
                if self.connected.is_set():
                    log.warning(
                        "ingest lost the broker %s:%d: %s",
                        self._broker.host,
                        self._broker.port,
                        err,
                    )
                else:
                    log.debug("ingest cannot reach the broker: %s", err)
                self.connected.clear()
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._broker.reconnect_max_s)
                continue
            delay = self._broker.reconnect_min_s

    async def _session(self) -> None:
        client = make_client(
            self._broker,
            self._client_id,
            receive_maximum=receive_window(self._settings.batch_max),
            # The acknowledgements (`_ack_loop`), a round's worth at once: paho's default
            # of 20 in flight had each PUBACK walk its outgoing queue to send the next
            # (≈ 50 µs an acknowledgement, ≈ 30 µs without the limit). A round is bounded
            # by `ack_max_per_s` (Mosquitto 2.0 took 5,000 in flight from one client).
            max_inflight_messages=0,
        )
        deliver_to(client, self._accept)  # straight from paho, no per-message task
        async with client:
            paho = client._client
            paho.manual_ack_set(True)
            for filt in topics.server_subscriptions(passages=self._passages):
                await client.subscribe(filt, qos=1)
            if self._passages is not None:
                # The session is persistent: a session that took everything before
                # (an older server, or `ingest.passages: shared`) would go on
                # receiving the other connection's channels.
                for filt in topics.server_subscriptions(passages=not self._passages):
                    await client.unsubscribe(filt)
            self.connected.set()
            log.info("ingest subscribed at %s:%d", self._broker.host, self._broker.port)
            async with asyncio.TaskGroup() as group:
                group.create_task(self._write_loop(paho), name="ingest-writer")
                group.create_task(self._ack_loop(paho), name="ingest-acks")
                async for _ in client.messages:  # delivered to _accept; raises when lost
                    pass

    def _accept(self, message: MQTTMessage) -> None:
        """paho's receive callback: nothing may escape it (the message would never be
        acknowledged, and the broker would send it again on every reconnect)."""
        try:
            self._take(message)
        except Exception:
            left_out = _internal_log.admit(("accept", None))
            if left_out is not None:
                log.exception(
                    "ingest failed on a message; acknowledged and dropped%s",
                    and_more(left_out, _internal_log.window_s),
                )
            self._metrics.inc(
                "bondwatch_ingest_rejected_total", channel="unknown", reason="internal"
            )
            self._hand_on(None, message)

    def _take(self, message: MQTTMessage) -> None:
        try:
            topic = message.topic
        except UnicodeDecodeError:
            topic = message._topic.decode("utf-8", "replace")
        payload = bytes(message.payload)
        outcome = validate(topic, payload, utc_now(), self._max_ahead)
        if isinstance(outcome, Rejected):
            self._refused(topic, payload, outcome)
            letter = DeadLetter(
                outcome.received_at, topic, outcome.kind, outcome.node_id, outcome.channel,
                outcome.reason, outcome.detail, outcome.device_ts, payload,
            )  # fmt: skip
            self._hand_on(letter, message)
            return
        self._hand_on(outcome, message)

    def _hand_on(self, item: IncomingMessage | DeadLetter | None, message: MQTTMessage) -> None:
        self._received.append((item, message.mid, message.qos))
        self._arrived.set()

    def _refused(self, topic: str, payload: bytes, rejected: Rejected) -> None:
        """Count, log (at most once a minute per node and reason) and tell the hooks."""
        count_rejected(self._metrics, rejected.channel or "unknown", rejected.reason)
        if rejected.reason != "internal":  # logged with its traceback by `validate`
            left_out = self._reject_log.admit((rejected.node_id, rejected.reason))
            if left_out is not None:
                log.warning(
                    "refused a message on %s (%s, %d bytes): %s%s",
                    topic[:256],
                    rejected.reason,
                    len(payload),
                    rejected.detail[:300],
                    and_more(left_out, self._reject_log.window_s),
                )
        for hook in self._on_rejected:
            try:
                hook(rejected)
            except Exception:
                left_out = _internal_log.admit(("hook", repr(hook)))
                if left_out is not None:
                    log.exception("on_rejected hook %r failed", hook)

    async def _keep_dead_letters(self, letters: list[DeadLetter]) -> bool:
        """Store a batch's refused messages; a failure is logged, never fatal. True
        when they are committed (they may then be acknowledged to their nodes)."""
        if not letters:
            return False
        try:
            if self._write_inline:
                self._dead_letters.add(letters)
            else:
                await asyncio.to_thread(self._dead_letters.add, letters)
        except Exception:
            log.exception("could not keep %d dead letters", len(letters))
            return False
        return True

    async def _ack_loop(self, paho: PahoClient) -> None:
        """Every `ack_interval_s`, tell each node that sent something which of its seqs are
        now in the store: one `ack` per node at most, QoS 1 (docs/edge-outbox.md), and
        `ack_max_per_s` × the interval nodes at most (the others wait their turn). An ack
        lost with the connection is harmless: the node sends the message again, and its
        duplicate is acknowledged."""
        interval = self._settings.ack_interval_s
        limit = max(1, round(self._settings.ack_max_per_s * interval))
        while True:
            await asyncio.sleep(interval)
            due = self._acks.take(utc_now(), limit)
            for topic, payload in due:
                paho.publish(topic, payload, qos=1)
            if due:
                self._metrics.inc("bondwatch_ingest_acks_total", len(due))

    async def _write_loop(self, paho: PahoClient) -> None:
        wait = self._settings.batch_wait_ms / 1000
        batch_max = self._settings.batch_max
        received = self._received
        while True:
            while not received:
                self._arrived.clear()
                await self._arrived.wait()
            deadline = time.monotonic() + wait
            while len(received) < batch_max:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                await asyncio.sleep(min(remaining, 0.005))
            batch = [received.popleft() for _ in range(min(len(received), batch_max))]
            valid = [item for item, _, _ in batch if isinstance(item, IncomingMessage)]
            letters = [i for i, _, _ in batch if isinstance(i, DeadLetter)]
            if await self._keep_dead_letters(letters):
                # Kept: the nodes may drop them instead of sending them again for ever.
                self._acks.add_refused(letters)
            if self._write_inline:
                fresh = self._write(valid)
            else:
                fresh = await asyncio.to_thread(self._write, valid)
            acknowledge(paho, [(mid, qos) for _, mid, qos in batch])
            # Committed: the nodes may now let go of these seqs (duplicates included:
            # a seq stored before is on disk too). Published by `_ack_loop`.
            self._acks.add(valid)
            self._metrics.inc("bondwatch_ingest_messages_total", len(fresh), outcome="stored")
            self._metrics.inc(
                "bondwatch_ingest_messages_total", len(valid) - len(fresh), outcome="duplicate"
            )
            for handler in self._handlers:
                try:
                    await handler(fresh)
                except Exception:
                    log.exception("ingest handler %s failed on a batch of %d", handler, len(fresh))

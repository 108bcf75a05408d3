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
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import aiomqtt
from paho.mqtt.client import MQTTMessage

from contract import topics
from contract.broker import BrokerSettings
from contract.ids import utc_now
from contract.mqtt_client import make_client
from contract.mqtt_receive import deliver_to
from contract.payloads import Availability, PayloadError, decode_edge
from server.config import IngestSettings
from server.metrics import Metrics
from server.store import Store
from server.store.database import IncomingMessage

log = logging.getLogger(__name__)

FreshHandler = Callable[[Sequence[IncomingMessage]], Awaitable[None]]
#: Stores a batch, each (node, seq) once, and returns the messages that were new.
Writer = Callable[[Sequence[IncomingMessage]], list[IncomingMessage]]


@dataclass(frozen=True, slots=True)
class Rejection:
    reason: str
    detail: str


def validate(topic: str, payload: bytes) -> IncomingMessage | Rejection:
    """Turn one MQTT message into an `IncomingMessage`, or say why it is rejected."""
    try:
        info = topics.parse(topic)
    except topics.TopicError as err:
        return Rejection("bad_topic", str(err))
    if info.channel == "command":
        return Rejection("bad_topic", f"{topic} is a server→edge topic")
    try:
        message = decode_edge(info.channel, payload)
    except PayloadError as err:
        return Rejection("bad_payload", str(err))
    if message.node_id != info.node_id:
        return Rejection(
            "node_mismatch", f"payload node_id {message.node_id!r} published on {topic}"
        )
    received_at = utc_now()
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
    return IncomingMessage(channel=info.channel, message=message, raw=raw, received_at=received_at)


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
        client_id: str = "bondwatch-server-1",
        passages: bool | None = None,
        writer: Writer | None = None,
    ) -> None:
        """`passages`: None takes every edge channel; True only gate passages, False
        all but them (`topics.server_subscriptions`): the server runs one Ingest of
        each so that a passage is decided at once even behind a position backlog.
        `writer` stores each batch (by default `store.store_messages`); messages are
        acknowledged once it returns."""
        self._broker = broker
        self._settings = settings
        self._store = store
        self._write: Writer = writer or store.store_messages
        self._metrics = metrics
        self._handlers = list(handlers)
        self._client_id = client_id
        self._passages = passages
        self._queue: asyncio.Queue[tuple[IncomingMessage | None, int, int]] = asyncio.Queue()
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
        self._logged_rejects: dict[str, float] = {}
        metrics.describe("bondwatch_ingest_messages_total", "edge messages by outcome")

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
            receive_maximum=max(self._settings.batch_max, 100),
        )
        deliver_to(client, self._accept)  # straight from paho, no per-message task
        async with client:
            paho = client._client
            paho.manual_ack_set(True)
            share = self._settings.share_group
            for filt in topics.server_subscriptions(share, passages=self._passages):
                await client.subscribe(filt, qos=1)
            if self._passages is not None:
                # The session is persistent: a session that took everything before
                # (an older server, or `ingest.passages: shared`) would go on
                # receiving the other connection's channels.
                for filt in topics.server_subscriptions(share, passages=not self._passages):
                    await client.unsubscribe(filt)
            self.connected.set()
            log.info("ingest subscribed at %s:%d", self._broker.host, self._broker.port)
            async with asyncio.TaskGroup() as group:
                group.create_task(self._write_loop(paho), name="ingest-writer")
                async for _ in client.messages:  # delivered to _accept; raises when lost
                    pass

    def _accept(self, message: MQTTMessage) -> None:
        try:
            topic = message.topic
        except UnicodeDecodeError:
            topic = message._topic.decode("utf-8", "replace")
        outcome = validate(topic, bytes(message.payload))
        if isinstance(outcome, Rejection):
            self._metrics.inc(
                "bondwatch_ingest_messages_total", outcome="rejected", reason=outcome.reason
            )
            self._log_reject(topic, outcome)
            self._queue.put_nowait((None, message.mid, message.qos))
            return
        self._queue.put_nowait((outcome, message.mid, message.qos))

    def _log_reject(self, topic: str, rejection: Rejection) -> None:
        """Log each kind of rejection per topic at most once a minute."""
        key = f"{topic}|{rejection.reason}"
        now = time.monotonic()
        if now - self._logged_rejects.get(key, -1e9) >= 60:
            self._logged_rejects[key] = now
            log.warning(
                "rejected message on %s (%s): %s", topic, rejection.reason, rejection.detail
            )

    async def _write_loop(self, paho: object) -> None:
        wait = self._settings.batch_wait_ms / 1000
        while True:
            first = await self._queue.get()
            batch = [first]
            deadline = time.monotonic() + wait
            while len(batch) < self._settings.batch_max:
                try:
                    batch.append(self._queue.get_nowait())
                except asyncio.QueueEmpty:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    await asyncio.sleep(min(remaining, 0.005))
            valid = [item for item, _, _ in batch if item is not None]
            if self._write_inline:
                fresh = self._write(valid)
            else:
                fresh = await asyncio.to_thread(self._write, valid)
            for _, mid, qos in batch:
                paho.ack(mid, qos)  # type: ignore[attr-defined]
            self._metrics.inc("bondwatch_ingest_messages_total", len(fresh), outcome="stored")
            self._metrics.inc(
                "bondwatch_ingest_messages_total", len(valid) - len(fresh), outcome="duplicate"
            )
            for handler in self._handlers:
                try:
                    await handler(fresh)
                except Exception:
                    log.exception("ingest handler %s failed on a batch of %d", handler, len(fresh))

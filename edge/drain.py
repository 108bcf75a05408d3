"""Draining a durable outbox to the broker: the rules the truck agent's link (`edge.link`,
one node) and the JT/T 808 gateway's uplink (`edge.jt808.uplink`, many nodes on one
connection) share (docs/edge-outbox.md).

* Messages stored before a connection and never taken by the broker go first (the
  backlog), while messages stored since go at once, between backlog batches, so a long
  replay does not hold up the present.
* Up to `max_inflight` QoS 1 publishes are in flight, handed to paho in id order (paho
  sends them in that order on the one connection). `aiomqtt.Client.publish(qos=1)`
  returns only after the PUBACK; the PUBACK only marks a message `sent` (the broker keeps
  its queue in memory between autosaves, so a broker crash loses what it had taken).
* A message leaves the outbox when the server's acknowledgement covers it. Messages the
  broker took on an earlier connection and still not acknowledged `ack_timeout_s` after
  a reconnect are sent again; so are those an acknowledgement skipped (a gap: the broker
  lost them). The server absorbs duplicates by (node, seq).

aiomqtt 2.x leaves reconnecting to the caller (TRAPS.md): `run_sessions` owns it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Final, Protocol, Unpack

import aiomqtt

from contract import topics
from contract.broker import BrokerSettings
from contract.log_throttle import LogThrottle, and_more
from contract.payloads import Ack, PayloadError, decode
from contract.topics import TopicError
from edge.outbox_db import OutboxItem, PendingFilter

log = logging.getLogger(__name__)

#: Channels whose payload model has a `replayed` flag (docs/contract.md).
REPLAYABLE_CHANNELS: Final = frozenset({"position", "lock", "passage"})
#: A connection that lasted this long resets the reconnect backoff.
STABLE_CONNECTION_S: Final = 10.0
#: Messages read from the outbox per batch of a catch-up pass.
BATCH: Final = 256
#: PUBACKs recorded at once at the most (between the periodic flushes).
PUBACK_FLUSH: Final = 4096


class PendingSource(Protocol):
    """An outbox to drain (`edge.outbox.Outbox`, `edge.jt808.store.GatewayStore`)."""

    def pending(self, limit: int, **filters: Unpack[PendingFilter]) -> Sequence[OutboxItem]: ...

    def max_id(self) -> int: ...


def raise_if_cancel_swallowed() -> None:
    """Re-raise a cancellation that Python 3.11's `asyncio.wait_for` lost.

    aiomqtt waits for CONNACK, SUBACK and PUBACK with `asyncio.wait_for`, which in
    3.11 returns normally when the awaited reply and the cancellation arrive in the
    same loop iteration (fixed in 3.12). The request stays counted in
    `Task.cancelling()`, so checking it at the loop's turns ends a lost cancel.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def run_sessions(
    session: Callable[[], Awaitable[None]],
    settings: BrokerSettings,
    *,
    who: str,
    on_lost: Callable[[BaseException], None],
    after_session: Callable[[], None],
    stopping: asyncio.Event,
) -> None:
    """Run `session()` again and again until `stopping` is set or cancellation, with
    exponential backoff between connections (reset by a connection that lasted)."""
    delay = settings.reconnect_min_s
    while not stopping.is_set():
        started = time.monotonic()
        try:
            await session()
        except* (aiomqtt.MqttError, OSError) as group:
            on_lost(group.exceptions[0])
        except* Exception as group:
            # Years unattended: a bug must not end the link; it is logged loudly.
            log.error(
                "%s: unexpected error in the MQTT link, reconnecting",
                who,
                exc_info=group.exceptions[0],
            )
        finally:
            after_session()
        if stopping.is_set():
            break
        if time.monotonic() - started > STABLE_CONNECTION_S:
            delay = settings.reconnect_min_s
        pause = delay * random.uniform(0.8, 1.2)
        delay = min(delay * 2, settings.reconnect_max_s)
        raise_if_cancel_swallowed()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(pause):
                await stopping.wait()


def message_bytes(message: aiomqtt.Message) -> bytes:
    """A received message's payload as bytes."""
    payload = message.payload
    if isinstance(payload, str):
        return payload.encode("utf-8")
    if isinstance(payload, bytes | bytearray):
        return bytes(payload)
    return json.dumps(payload).encode("utf-8")


class CatchUp:
    """One catch-up pass over the messages stored before a connection, in id order.

    The backlog pass (`sent_before` None) takes those the broker never took, at once;
    a resend pass those it took before `sent_before`, from `due` (monotonic time), of
    one node (`node_id`) or of all.
    """

    def __init__(
        self,
        up_to: int,
        due: float,
        sent_before: float | None = None,
        node_id: str | None = None,
    ) -> None:
        self.up_to = up_to
        self.due = due
        self.sent_before = sent_before
        self.node_id = node_id
        self.cursor = 0

    def done(self) -> bool:
        return self.cursor >= self.up_to

    def batch(self, source: PendingSource, fallback: bool) -> Sequence[OutboxItem]:
        if self.done() or time.monotonic() < self.due:
            return []
        if self.sent_before is not None and fallback:
            self.cursor = self.up_to  # in the fallback, the PUBACK was the end
            return []
        batch = source.pending(
            BATCH,
            after_id=self.cursor,
            up_to_id=self.up_to,
            unsent_only=self.sent_before is None,
            sent_before=self.sent_before,
            node_id=self.node_id,
        )
        if not batch:
            self.cursor = self.up_to
        return batch


class Drain:
    """Sends an outbox on one connection after another and keeps the counters.

    `record_pubacks(ids)` is handed the ids the broker took (in batches): the owner
    marks them `sent` (or, in its PUBACK fallback, removes them).
    """

    def __init__(
        self,
        source: PendingSource,
        record_pubacks: Callable[[list[int]], object],
        *,
        max_inflight: int,
        replay_after_s: float,
        publish_timeout_s: float,
        ack_timeout_s: float,
        ack_flush_s: float,
    ) -> None:
        self.source = source
        self.record_pubacks = record_pubacks
        self.max_inflight = max_inflight
        self.replay_after_s = replay_after_s
        self.publish_timeout_s = publish_timeout_s
        self.ack_timeout_s = ack_timeout_s
        self.ack_flush_s = ack_flush_s
        #: Set when something was stored (or must be sent again): wakes the sender.
        self.wake = asyncio.Event()
        #: True while the PUBACK ends a message's life (resend passes are skipped).
        self.puback_fallback = False
        #: Wall time of the first PUBACK not yet covered by a server acknowledgement.
        self.unacked_since: float | None = None
        #: Wall time the current connection was made.
        self.connected_at = 0.0
        self.published_total = 0
        self.replayed_total = 0
        self.resent_total = 0
        #: Acknowledgements ignored, by reason (a contract reason, or `wrong_node`).
        self.acks_ignored: dict[str, int] = {}
        self._ack_log = LogThrottle()
        self._acked: list[int] = []
        self._channels: dict[str, str] = {}
        #: Cutoffs of gaps an acknowledgement showed, by node (None: the one node).
        self._gaps: dict[str | None, float] = {}
        #: The resend passes of this connection, by node (None: all nodes).
        self._resends: dict[str | None, CatchUp] = {}

    # -- sending ----------------------------------------------------------------------

    def _channel(self, topic: str) -> str:
        channel = self._channels.get(topic)
        if channel is None:
            try:
                channel = topics.parse(topic).channel
            except TopicError:
                channel = ""
            self._channels[topic] = channel
        return channel

    def wire(self, item: OutboxItem, now: float) -> bytes:
        """The payload to send; flagged `replayed` when it waited through a gap."""
        waited = item.created < self.connected_at or now - item.created > self.replay_after_s
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

    async def send(
        self,
        client: aiomqtt.Client,
        group: asyncio.TaskGroup,
        stopping: asyncio.Event,
        before_round: Callable[[], None] | None = None,
    ) -> None:
        """Hand the outbox to paho in order until `stopping` is set (then wait for what
        is in flight, at most `publish_timeout_s`)."""
        window = asyncio.Semaphore(self.max_inflight)
        inflight: set[asyncio.Task[None]] = set()
        live_cursor = floor = self.source.max_id()
        backlog = CatchUp(floor, time.monotonic())
        self._resends = {
            None: CatchUp(floor, time.monotonic() + self.ack_timeout_s, self.connected_at)
        }

        async def launch(item: OutboxItem, again: bool) -> None:
            await window.acquire()
            payload = self.wire(item, time.time())
            if again:
                self.resent_total += 1
            task = group.create_task(self._publish(client, item, payload, window))
            inflight.add(task)
            task.add_done_callback(inflight.discard)

        while not stopping.is_set():
            raise_if_cancel_swallowed()
            self.wake.clear()
            if before_round is not None:
                before_round()
            self._open_gaps()
            sent = 0
            for item in self.source.pending(self.max_inflight, after_id=live_cursor):
                await launch(item, False)
                live_cursor = item.id
                sent += 1
            for catch_up in (backlog, *self._resends.values()):
                for item in catch_up.batch(self.source, self.puback_fallback):
                    if self.wake.is_set() or stopping.is_set():
                        break  # something live arrived: serve it first
                    await launch(item, catch_up is not backlog)
                    catch_up.cursor = item.id
                    sent += 1
            if sent == 0:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(1.0):
                        await self.wake.wait()
        if inflight:
            await asyncio.wait(list(inflight), timeout=self.publish_timeout_s)

    def _open_gaps(self) -> None:
        """A resend pass for each gap shown since the last round (one per node)."""
        gaps, self._gaps = self._gaps, {}
        now = time.monotonic()
        for node_id, cutoff in gaps.items():
            current = self._resends.get(node_id)
            if current is None or current.done() or now >= current.due:
                before = max(cutoff, 0.0 if current is None else current.sent_before or 0.0)
                self._resends[node_id] = CatchUp(self.source.max_id(), now, before, node_id)
            else:  # a pass not due yet (after a reconnect): the gap waits for it, not lost
                self._gaps.setdefault(node_id, cutoff)
        for node_id in [n for n, p in self._resends.items() if n is not None and p.done()]:
            del self._resends[node_id]

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
        if self.unacked_since is None:
            self.unacked_since = time.time()
        self._acked.append(item.id)
        self.published_total += 1
        if len(self._acked) >= PUBACK_FLUSH:
            self.flush_pubacks()

    def flush_pubacks(self) -> None:
        """Hand the PUBACKs received since the last flush to `record_pubacks`."""
        if self._acked:
            acked, self._acked = self._acked, []
            self.record_pubacks(acked)

    async def flush_loop(self) -> None:
        while True:
            await asyncio.sleep(self.ack_flush_s)
            self.flush_pubacks()

    # -- the server's acknowledgement --------------------------------------------------

    def read_ack(self, raw: bytes, node_id: str) -> Ack | None:
        """The acknowledgement for `node_id` in `raw`, or None (counted by reason, and
        logged at most once per reason a minute: a flood must not write the log full)."""
        try:
            ack = decode(Ack, raw)
        except PayloadError as err:
            self._ignore_ack(node_id, err.reason, f"unreadable acknowledgement ignored: {err}")
            return None
        if ack.node_id != node_id:
            self._ignore_ack(node_id, "wrong_node", f"acknowledgement for {ack.node_id} ignored")
            return None
        self.flush_pubacks()  # PUBACKs first, so that `sent` never outlives the removal
        self.unacked_since = None
        return ack

    def _ignore_ack(self, node_id: str, reason: str, text: str) -> None:
        self.acks_ignored[reason] = self.acks_ignored.get(reason, 0) + 1
        left_out = self._ack_log.admit(reason)
        if left_out is not None:
            more = and_more(left_out, self._ack_log.window_s)
            log.warning("node %s: %s%s", node_id, text[:300], more)

    def check_gap(self, newest_sent: float | None, node_id: str | None = None) -> None:
        """After an acknowledgement removed messages the broker took at the latest at
        `newest_sent`: the server stores a node's messages in the order the broker took
        them, so one taken `ack_timeout_s` before and still not acknowledged was lost on
        the way (a broker crash, a dropped session) and is sent again."""
        if newest_sent is None:
            return
        cutoff = newest_sent - self.ack_timeout_s
        if self.source.pending(1, sent_before=cutoff, node_id=node_id):
            self._gaps[node_id] = cutoff
            self.wake.set()

"""Fan-out of live events to the console's WebSocket clients.

The ingest path, the alarm service and the gates publish; every connected client gets
its own bounded queue. Publishing never waits: a client whose queue is full is dropped
(its socket closes with 1013, "try again later") and the publisher carries on.

A client may ask for some kinds only (`kinds`) and for the positions of some vehicles
only (`vehicles`): the alarm queue takes no positions, the trip page one truck's.

Positions are throttled per client and vehicle to one message per `position_interval_s`;
a position that arrives sooner is kept as that vehicle's pending one (the newest wins)
and sent when the interval has passed, so the map always ends on the latest fix.

`publish` may be called from any thread (the judge and the alarm service run in worker
threads); it hands over to the hub's event loop.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from contract.ids import format_ts
from contract.payloads import LaneStatus, Position
from server.alarms.model import Alarm
from server.store.database import IncomingMessage

log = logging.getLogger(__name__)

Kind = Literal["position", "alarm", "passage", "lane"]
KINDS: tuple[Kind, ...] = ("position", "alarm", "passage", "lane")

#: What a client's queue yields when it has been dropped for being too slow.
DROPPED: dict[str, Any] = {"type": "_dropped"}


@dataclass(eq=False)
class Client:
    """One connected console: its queue and its position throttle."""

    name: str
    queue: asyncio.Queue[dict[str, Any]]
    kinds: frozenset[str] = frozenset(KINDS)
    #: positions of these vehicles only (None: every vehicle)
    vehicles: frozenset[str] | None = None
    last_sent: dict[str, float] = field(default_factory=dict)
    #: each vehicle's newest held position: its message, or the fix itself until it is
    #: sent (most are replaced by a newer one first, and never need a message built)
    pending: dict[str, dict[str, Any] | Position] = field(default_factory=dict)
    dropped: bool = False

    async def next(self) -> dict[str, Any]:
        """The next message; `DROPPED` once the hub gave up on this client."""
        return await self.queue.get()

    def ready(self, most: int) -> list[dict[str, Any]]:
        """Up to `most` more messages already queued, without waiting."""
        out: list[dict[str, Any]] = []
        while len(out) < most and not self.queue.empty():
            out.append(self.queue.get_nowait())
        return out

    def wants(self, kind: str, payload: dict[str, Any]) -> bool:
        if kind not in self.kinds:
            return False
        if kind == "position" and self.vehicles is not None:
            return str(payload.get("vehicle_id")) in self.vehicles
        return True


class Hub:
    def __init__(
        self,
        queue_size: int = 5000,
        position_interval_s: float = 1.0,
        flush_every_s: float = 0.2,
    ) -> None:
        self.queue_size = queue_size
        self.position_interval_s = position_interval_s
        self._flush_every_s = flush_every_s
        self._clients: set[Client] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._flusher: asyncio.Task[None] | None = None
        self._lock = threading.Lock()
        self.published = 0
        self.dropped_clients = 0

    # ---- clients ----------------------------------------------------------------------

    def connect(
        self,
        name: str,
        kinds: frozenset[str] | None = None,
        vehicles: frozenset[str] | None = None,
    ) -> Client:
        """A new client (call on the event loop that serves it), for `kinds` (default all)
        and the positions of `vehicles` (default all)."""
        self._bind(asyncio.get_running_loop())
        unknown = sorted(set(kinds or ()) - set(KINDS))
        if unknown:
            raise ValueError(f"unknown stream event kind(s) {', '.join(unknown)}")
        client = Client(
            name,
            asyncio.Queue(maxsize=self.queue_size),
            frozenset(KINDS) if kinds is None else kinds,
            vehicles,
        )
        self._clients.add(client)
        log.info("stream client %s connected (%d now)", name, len(self._clients))
        return client

    def disconnect(self, client: Client) -> None:
        if client in self._clients:
            self._clients.discard(client)
            log.info("stream client %s left (%d now)", client.name, len(self._clients))

    @property
    def client_count(self) -> int:
        return len(self._clients)

    def _bind(self, loop: asyncio.AbstractEventLoop) -> None:
        with self._lock:
            if self._loop is not loop or self._flusher is None or self._flusher.done():
                self._loop = loop
                self._flusher = loop.create_task(self._flush_forever(), name="stream-flush")

    # ---- publishing -------------------------------------------------------------------

    def publish(self, kind: Kind, payload: dict[str, Any]) -> None:
        """Send `{"type": kind, "data": payload}` to every client; never blocks.

        Positions must carry `vehicle_id` (they are throttled per vehicle).
        """
        if kind not in KINDS:
            raise ValueError(f"unknown stream event kind {kind!r}")
        self._on_loop(self._deliver, kind, payload)

    async def on_messages(self, batch: Sequence[IncomingMessage]) -> None:
        """Ingest handler: the newest stored fix of each vehicle in the batch, and every
        lane change."""
        if not self._clients:
            return
        if any("position" in c.kinds for c in self._clients):
            newest: dict[str, Position] = {}
            for item in batch:
                msg = item.message
                if isinstance(msg, Position) and msg.fix != "none":
                    known = newest.get(msg.node_id)
                    if known is None or (msg.ts, msg.seq) > (known.ts, known.seq):
                        newest[msg.node_id] = msg
            self._on_loop(self._deliver_positions, list(newest.values()))
        for item in batch:  # a gate lane's state and traffic light, every change in order
            if isinstance(item.message, LaneStatus):
                self.publish("lane", lane_event(item.message))

    def _on_loop(self, deliver: Callable[..., None], *args: Any) -> None:
        """Call `deliver(*args)` on the hub's event loop: at once from it, else handed
        over (the ingest's handlers may run in a worker thread)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return  # nobody has ever connected: nothing to do
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            deliver(*args)
        else:
            loop.call_soon_threadsafe(deliver, *args)

    def _deliver_positions(self, fixes: list[Position]) -> None:
        """`_deliver` of each of `fixes` (one per vehicle), each message built only when
        a client is sent it now: the other clients keep the fix as pending."""
        now = time.monotonic()
        clients = [c for c in self._clients if "position" in c.kinds]
        for msg in fixes:
            self.published += 1
            vehicle = msg.node_id
            built: dict[str, Any] | None = None
            for client in clients:
                if client.vehicles is not None and vehicle not in client.vehicles:
                    continue
                if self._held(client, vehicle, msg, now):
                    continue
                if built is None:
                    built = position_message(msg)
                self._offer(client, built)

    def _deliver(self, kind: Kind, payload: dict[str, Any]) -> None:
        self.published += 1
        message = {"type": kind, "data": payload}
        now = time.monotonic()
        for client in list(self._clients):
            if not client.wants(kind, payload):
                continue
            if kind == "position" and self._held(
                client, str(payload.get("vehicle_id")), message, now
            ):
                continue
            self._offer(client, message)

    def _held(
        self, client: Client, vehicle: str, position: dict[str, Any] | Position, now: float
    ) -> bool:
        """Whether `client` is sent `vehicle`'s position later: within its interval, the
        position is held (the newest replaces the one held before); else the vehicle
        counts as sent now."""
        if now - client.last_sent.get(vehicle, -1e9) < self.position_interval_s:
            client.pending[vehicle] = position
            return True
        client.last_sent[vehicle] = now
        client.pending.pop(vehicle, None)
        return False

    def _offer(self, client: Client, message: dict[str, Any]) -> None:
        if client.dropped:
            return
        try:
            client.queue.put_nowait(message)
        except asyncio.QueueFull:
            self._drop(client)

    def _drop(self, client: Client) -> None:
        client.dropped = True
        self.dropped_clients += 1
        self._clients.discard(client)
        while not client.queue.empty():
            client.queue.get_nowait()
        client.queue.put_nowait(DROPPED)
        log.warning(
            "stream client %s dropped: %d messages unread (too slow)",
            client.name,
            self.queue_size,
        )

    async def _flush_forever(self) -> None:
        while True:
            await asyncio.sleep(self._flush_every_s)
            self.flush_pending(time.monotonic())

    def flush_pending(self, now: float) -> None:
        """Send each held position whose vehicle's interval has passed."""
        for client in list(self._clients):
            for vehicle, message in list(client.pending.items()):
                if now - client.last_sent.get(vehicle, -1e9) >= self.position_interval_s:
                    client.last_sent[vehicle] = now
                    del client.pending[vehicle]
                    if isinstance(message, Position):
                        message = position_message(message)
                    self._offer(client, message)


def position_message(msg: Position) -> dict[str, Any]:
    """The stream message of a fix."""
    return {"type": "position", "data": position_event(msg)}


def position_event(msg: Position) -> dict[str, Any]:
    """The `data` of a `position` stream message."""
    return {
        "vehicle_id": msg.node_id,
        "seq": msg.seq,
        "ts": format_ts(msg.ts),
        "lat": msg.lat,
        "lon": msg.lon,
        "alt_m": msg.alt_m,
        "speed_kmh": msg.speed_kmh,
        "course_deg": msg.course_deg,
        "fix": msg.fix,
        "replayed": msg.replayed,
    }


def lane_event(msg: LaneStatus) -> dict[str, Any]:
    """The `data` of a `lane` stream message (the contract's `lane` payload)."""
    data: dict[str, Any] = msg.model_dump(mode="json")
    return data


def alarm_publisher(hub: Hub) -> Callable[[Alarm], None]:
    """An `AlarmService` listener sending every committed alarm change as `alarm`."""

    def publish(alarm: Alarm) -> None:
        hub.publish("alarm", alarm.as_json())

    return publish

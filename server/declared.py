"""The trucks' `declared` lists: which locks each truck's open trips carry (retained).

A JT/T 808 gateway maps a cellular lock listed without a node to the truck whose open
declaration names it (`contract.cellular_registry.map_declared_locks`); it learns the
declarations from the retained `bondwatch/v1/truck/{node}/declared` messages
(docs/contract.md, docs/jt808-gateway.md). Trips change in several places — a
declaration registered over REST, a trip started by the ingest, released or closed by
a gate (in this process or the gate worker's) or the judge's child — so one publisher
here reads the store and publishes only what changed: at once when woken (`wake`, after
a declaration is registered), every `every_s` seconds for the changes made elsewhere,
and every truck of the store on each new broker connection (a restarted server, or a
broker that lost its retained messages, is brought up to date).

A truck's list holds its trips whose locks are not released (`declared`, `in_transit`,
`arrived`, `held`), the started ones first, then the declared ones newest first (only
the first `MAX_DECLARED_TRIPS` are carried); a truck with none has its retained message cleared
(an empty payload). The messages go out on the server's command connection
(`server.gates.commands.CommandPublisher.publish_retained`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from typing import Any, Final, Protocol

from sqlalchemy import case, select

from contract import topics
from contract.ids import utc_now
from contract.payloads import MAX_DECLARED_TRIPS, Declared, DeclaredTrip
from server.store import Store, schema
from server.store.database import LOCKED_TRIP_STATUSES

log = logging.getLogger(__name__)

#: How often the store is read for trips changed elsewhere (gates, the judge).
DECLARED_EVERY_S: Final = 3.0

#: A truck's open trips as published: ((trip id, lock ids, started), …), in list order.
TruckTrips = tuple[tuple[str, tuple[str, ...], bool], ...]


class RetainedPublisher(Protocol):
    """Where retained messages go (the server's command connection)."""

    #: broker connections made so far
    connections: int

    def publish_retained(self, topic: str, payload: bytes) -> None:
        """Queue a retained message; returns at once, from any thread."""
        ...


def open_trips(store: Store) -> dict[str, TruckTrips]:
    """Each truck's trips whose locks are on it, with their declarations' lock ids."""
    t, d = schema.trips.c, schema.declarations.c
    with store.engine.connect() as conn:
        rows = conn.execute(
            select(t.trip_id, t.vehicle_id, t.status, d.body)
            .join(schema.declarations, d.declaration_id == t.declaration_id)
            .where(t.status.in_(LOCKED_TRIP_STATUSES))
            # started trips first (their locks are sealed on the truck: never cut off the
            # list), then the declared ones, newest first
            .order_by(
                t.vehicle_id,
                case((t.status == "declared", 1), else_=0),
                t.created_at.desc(),
                t.trip_id,
            )
        ).all()
    out: dict[str, list[tuple[str, tuple[str, ...], bool]]] = {}
    for trip_id, vehicle_id, status, body in rows:
        locks = _lock_ids(body)
        if locks:
            out.setdefault(vehicle_id, []).append((trip_id, locks, status != "declared"))
    return {vehicle: tuple(trips) for vehicle, trips in out.items()}


def _lock_ids(body: Any) -> tuple[str, ...]:
    """The lock ids of a stored declaration body (validated when it was registered)."""
    locks = body.get("lock_ids") if isinstance(body, dict) else None
    return tuple(str(lock) for lock in locks) if isinstance(locks, list) else ()


def all_trucks(store: Store) -> set[str]:
    """Every truck that has a trip in the store."""
    with store.engine.connect() as conn:
        return set(conn.execute(select(schema.trips.c.vehicle_id).distinct()).scalars())


def payload(node_id: str, trips: TruckTrips) -> bytes:
    """The retained payload of a truck's list: its `Declared`, or empty (cleared)."""
    if not trips:
        return b""
    carried = trips[:MAX_DECLARED_TRIPS]
    if len(trips) > len(carried):
        log.warning(
            "truck %s has %d open trips; its declared list carries the started ones and "
            "the newest declared, %d in all",
            node_id,
            len(trips),
            len(carried),
        )
    message = Declared(
        node_id=node_id,
        ts=utc_now(),
        trips=[
            DeclaredTrip(trip_id=trip, lock_ids=list(locks), started=started)
            for trip, locks, started in carried
        ],
    )
    return message.to_json()


class DeclaredPublisher:
    """Publishes each truck's `declared` list when it changes (module docstring)."""

    def __init__(
        self, store: Store, publisher: RetainedPublisher, every_s: float = DECLARED_EVERY_S
    ) -> None:
        self.store = store
        self.publisher = publisher
        self.every_s = every_s
        #: what each truck's retained message says now (trucks whose list is cleared: absent)
        self.published: dict[str, TruckTrips] = {}
        self.sent = 0
        self._connections = 0  # the publisher's connection last published in full
        self._lock = threading.Lock()  # one step at a time
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None

    def wake(self) -> None:
        """Read the store now (a declaration was registered); from any thread."""
        loop = self._loop
        if loop is None:
            return  # not running yet: its first step reads everything
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._wake.set()
        else:
            loop.call_soon_threadsafe(self._wake.set)

    def step(self) -> int:
        """Publish what changed since the last step (everything, on a new connection of
        the publisher); returns how many messages were queued. Blocking: the store."""
        with self._lock:
            connections = self.publisher.connections
            if connections == 0:
                return 0  # not connected yet: the first connection publishes everything
            current = open_trips(self.store)
            if connections != self._connections:
                trucks = all_trucks(self.store) | set(current) | set(self.published)
                self._connections = connections
            else:
                trucks = {
                    truck
                    for truck in set(current) | set(self.published)
                    if current.get(truck) != self.published.get(truck)
                }
            for truck in sorted(trucks):
                trips = current.get(truck, ())
                try:
                    message = payload(truck, trips)
                except ValueError:  # one truck's bad data must not hold back the others
                    log.exception("truck %s: its declared list cannot be published", truck)
                    continue
                self.publisher.publish_retained(topics.declared(truck), message)
                if trips:
                    self.published[truck] = trips
                else:
                    self.published.pop(truck, None)
            self.sent += len(trucks)
            if trucks:
                log.info("declared lists published for %d trucks", len(trucks))
            return len(trucks)

    async def run_forever(self) -> None:
        """Step at once when woken, else every `every_s` seconds, until cancelled."""
        self._loop = asyncio.get_running_loop()
        while True:
            self._wake.clear()
            try:
                await asyncio.to_thread(self.step)
            except Exception:  # a store outage must not end the publisher
                log.exception("declared lists: reading the store failed; trying again")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.every_s):
                    await self._wake.wait()

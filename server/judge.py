"""Judging trips: stored edge messages → the rules, in fix-time order → alarm effects.

Each trip in transit has a `TripRun`: its rule state, the (ts, seq) key of the last
event judged, and checkpoints of the state along the way.

Completeness comes first. Every message of a node carries the next sequence number, so
a gap in the stored sequence means messages are still on their way (an outbox backlog
after a coverage gap, interleaved with live messages). The judge holds what lies
beyond a gap until the gap fills, then judges everything in fix-time order; it waits
at most `hold_s` (a sequence number can be lost for good: a last will reserved but
never sent), then judges what it has. A message that arrives after that, older than
the last judged one, makes the run go back to the newest checkpoint before it and judge
everything since again, from the store: a deviation during the gap is still found. The
alarm sink is idempotent for an effect it has already applied (same trip, type and
time); late data can add an incident, it never silently removes one.

Most late data is late by a moment only: an e-lock's report carries its own whole-second
clock, so it sorts just before the fix that came in a fraction of a second earlier. A run
keeps its last `RECENT_EVENTS` events with the state before each; when everything after
the late message is among them, the run goes back in memory and judges those events
again with it (the same order as from the store, without reading it).

After a restart, a trip's state is rebuilt the same way, from its stored messages.

The ordering itself — the sequence windows, the runs, what to judge again — is pure and
apart from the store, in `server.judge_order`; this module applies it to the store.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Protocol

from contract.ids import utc_now
from contract.payloads import EdgeMessage
from server import judge_marks
from server.geo import Geography
from server.judge_marks import Mark
from server.judge_order import (
    JUDGED_CHANNELS,
    JUDGED_STATUSES,
    Key,
    SeqWindow,
    TripRun,
    events_to_judge,
    holes,
    merged,
    rerun_from,
)
from server.rules import device
from server.rules.alarms import Effect
from server.rules.engine import clears_silence, tick
from server.rules.inputs import TripContext
from server.rules.profiles import CreditClass, CreditProfile
from server.store import Store
from server.store.database import IncomingMessage
from server.store.trip import Trip, TripHead

log = logging.getLogger(__name__)

#: More trips in transit than any one server process follows (one query per tick).
MAX_TRIPS_FOLLOWED = 1_000_000
#: Trips not heard from since they started, taken up per tick (each is rebuilt from the
#: store; after a restart most trucks bring their runs back themselves, at once).
ADOPT_PER_TICK = 100


@dataclass(slots=True)
class Arrival:
    """A trip that has arrived, its decision waiting for the judge."""

    trip_id: str
    #: when the server received its first arrival passage (None: not known)
    at: datetime | None
    #: when the server last received a message of the vehicle before that
    heard: datetime | None
    #: its timers have run as at `at`
    ticked: bool = False


class AlarmSink(Protocol):
    """Where effects go. Must be idempotent for an effect it has already applied."""

    def apply(self, trip: Trip, effects: Sequence[Effect]) -> None: ...


class Judge:
    def __init__(
        self,
        store: Store,
        geography: Geography,
        profiles: dict[CreditClass, CreditProfile],
        sink: AlarmSink,
        hold_s: float = 30.0,
        lock_secrets: Mapping[str, bytes] = MappingProxyType({}),
        owns: Callable[[str], bool] | None = None,
    ) -> None:
        """`lock_secrets`: lock id → secret, to authenticate lock reports (none: every
        lock's reports pass unchecked, and the gate holds its trucks). `owns`: whether
        this judge judges a vehicle's trips (one of several workers,
        `server.judge_worker.JudgeWorkers`); None: every vehicle's."""
        self._owns = owns
        self._store = store
        self._lock_secrets = lock_secrets
        self._geography = geography
        self._profiles = profiles
        self._sink = sink
        self._hold_s = hold_s
        self._runs: dict[str, TripRun] = {}  # by vehicle id
        #: when the server last received a message of each vehicle (its own clock): what
        #: silence (DEVICE_OFFLINE) is measured from, whatever the device's clock says
        self._received: dict[str, datetime] = {}
        self._windows: dict[str, SeqWindow] = {}
        #: the mark last written of each vehicle followed (`server.judge_marks`)
        self._marked: dict[str, Mark] = {}
        #: vehicles whose trip has arrived, its decision waiting for the judge: their
        #: messages are judged, their timers (silence, time limit) run as at the arrival
        self._arrived: dict[str, Arrival] = {}
        #: goes up as the judge gets on with its work, and when its timers last ran
        #: through (monotonic seconds): for a worker's heartbeat
        self.progress = 0
        self.ticked = time.monotonic()
        self.reruns = 0  # late data judged again: from memory, or from the store
        self.reruns_from_store = 0
        # The ingest (judge_batch) and the timers (tick) run in different worker
        # threads; both change the runs.
        self._lock = threading.Lock()

    @property
    def shortest_silence(self) -> timedelta:
        """The shortest silence (`silence_s`) any credit profile allows."""
        return timedelta(seconds=min(p.silence_s for p in self._profiles.values()))

    @property
    def busy(self) -> bool:
        """Judging a batch or running the timers (`progress` counts the steps)."""
        return self._lock.locked()

    async def on_messages(self, batch: Sequence[IncomingMessage]) -> None:
        await asyncio.to_thread(self.judge_batch, batch)

    def judge_batch(self, batch: Sequence[IncomingMessage], now: float | None = None) -> None:
        """Judge freshly stored messages (`now`: monotonic seconds, for the hold)."""
        with self._lock:
            self._write_marks(self._judge_batch(batch, now))

    def _judge_batch(self, batch: Sequence[IncomingMessage], now: float | None) -> Iterable[str]:
        """Judge the batch; the vehicles it had messages of."""
        clock = time.monotonic() if now is None else now
        by_node: dict[str, list[tuple[Key, EdgeMessage]]] = {}
        #: by vehicle: when it was last heard from before this batch, and again in it
        heard: dict[str, tuple[datetime | None, datetime]] = {}
        received = self._received
        for item in batch:
            msg = item.message
            node_id = msg.node_id
            known = received.get(node_id)
            messages = by_node.get(node_id)
            if messages is None:
                messages = by_node[node_id] = []
                heard[node_id] = (known, item.received_at)
            messages.append(((msg.ts, msg.seq), msg))
            if known is None or item.received_at > known:
                received[node_id] = item.received_at
        trips = self._store.open_trip_heads(by_node)
        for node_id, messages in by_node.items():
            self.progress += 1
            try:
                head = trips.get(node_id)
                run, rebuilt = self._run_for(node_id, head)
                if run is None or rebuilt:
                    continue  # no trip to judge, or the rebuild from the store had these
                arrived = head is not None and head.status == "arrived"
                self._silence_ended(run, node_id, messages, *heard[node_id], arrived=arrived)
                window = self._windows[node_id]
                for key, msg in messages:
                    window.add(key, msg, clock)
                self._judge(run, node_id, *window.release(clock, self._hold_s))
            except Exception:
                self._failed(node_id)
        return by_node.keys()

    def _silence_ended(
        self,
        run: TripRun,
        vehicle_id: str,
        messages: Sequence[tuple[Key, EdgeMessage]],
        before: datetime | None,
        again: datetime,
        arrived: bool,
    ) -> None:
        """The vehicle, silent since `before`, heard from `again` (server receive times):
        a silence longer than allowed is DEVICE_OFFLINE even when no tick ran during it
        (the judge hung, or lagged, meanwhile), cleared by the first live message. (Not a
        silence that ended after the trip arrived: its timers run as at the arrival.)"""
        if before is None:
            return
        due = device.silence_due(run.state.device, run.ctx, before)
        if due is None or again <= due:
            return  # (in all but a silence too long: one comparison a vehicle a batch)
        if arrived:
            arrival = self._arrival_of(vehicle_id, run.trip.trip_id)
            if arrival.at is None or again > arrival.at:
                return
        live = [msg.ts for _, msg in messages if clears_silence(msg)]
        if live:
            # (effects only: the state ends heard from, and a rewind cannot undo a raise)
            effects = device.silence_ended(run.state.device, run.ctx, before, again, min(live))
        else:  # raised, and cleared by the next live message
            run.state, effects = tick(run.state, again, run.ctx, before)
        self._emit(run, effects)

    def _failed(self, vehicle_id: str) -> None:
        """Judging a vehicle's messages failed (its effects may not all be applied):
        its run is forgotten, so that its mark stays where it was, and the trip is taken
        up again from the store with its next message or timer tick."""
        log.exception("judging the messages of %s failed; its trip is judged again", vehicle_id)
        self._forget(vehicle_id)

    def _judge(
        self,
        run: TripRun,
        node_id: str,
        ready: list[tuple[Key, EdgeMessage]],
        late: list[tuple[Key, EdgeMessage]],
    ) -> None:
        started = run.started_at
        events, late_events = events_to_judge(ready, started), events_to_judge(late, started)
        again = rerun_from(run.last_key, events, late_events)
        if again is not None:
            undone = run.rewind_recent(again)
            if undone is None:
                self._rerun(run, node_id, again)
                return
            self.reruns += 1
            log.debug(
                "trip %s: %s is late by %d events; judging them again",
                run.trip.trip_id,
                again[0],
                len(undone),
            )
            events = merged(undone, events, late_events)
        effects: list[Effect] = []
        for key, msg in events:
            effects += run.advance(key, msg)
        self._emit(run, effects)

    def _run_for(self, vehicle_id: str, head: TripHead | None) -> tuple[TripRun | None, bool]:
        """The vehicle's run for its open trip (`head`), and whether it was just rebuilt
        from the store."""
        run = self._runs.get(vehicle_id)
        if head is not None and head.status in JUDGED_STATUSES and head.started:
            if run is not None and run.trip.trip_id == head.trip_id:
                return run, False
            trip = self._store.get_trip(head.trip_id)
            if trip is not None and trip.status in JUDGED_STATUSES and trip.started_at:
                return self._start_run(vehicle_id, trip), True
            # (it ended between the two reads)
        self._forget(vehicle_id)
        return None, False

    def _start_run(self, vehicle_id: str, trip: Trip) -> TripRun:
        run = TripRun(trip=trip, ctx=self._context(trip))
        self._runs[vehicle_id] = run
        # A trip seen for the first time by this process: rebuild from the store. The
        # sink ignores effects it had already applied before a restart. Every message
        # numbered up to `stored` is in the rebuild; one stored meanwhile, which the
        # rebuild may have judged too, comes in a later batch and is judged again. The
        # numbers the store lacks from the trip's first message on are still to come.
        stored = self._store.max_seq(vehicle_id)
        first = self._replay(run, vehicle_id, (run.started_at, -1), upto=None)
        window = self._windows[vehicle_id] = SeqWindow(upto=stored)
        if first is not None:
            window.missing = holes(self._store.node_seqs(vehicle_id, first, stored), first)
        heard = self._store.last_received_at(vehicle_id)
        if heard is not None:
            self._silence_unjudged(run, vehicle_id, heard)
        self._marked.pop(vehicle_id, None)  # the new trip's mark is written
        known = self._received.get(vehicle_id)
        if heard is not None and (known is None or heard > known):
            self._received[vehicle_id] = heard
        return run

    def _silence_unjudged(self, run: TripRun, vehicle_id: str, heard: datetime) -> None:
        """Taking a trip up from the store (a new worker, a restart): a silence that fell
        due while no judge ran — the last one's mark says when — and ended before this
        one took over (the vehicle was last `heard` from later) is raised now, and
        cleared by the message that ended it."""
        with self._store.engine.connect() as conn:
            last = judge_marks.read(conn, vehicle_id)
        if last is None or last.trip_id != run.trip.trip_id or last.due_at is None:
            return
        if heard <= last.due_at:
            return  # not heard from since it fell due: the timers find it
        before = self._store.last_received_at(vehicle_id, before=last.due_at)
        after = self._store.heard_after(vehicle_id, last.due_at)
        if before is None or after is None:
            return  # still silent: the timers find it
        again, heard_at = after
        if run.trip.status == "arrived":
            arrival = self._arrival_of(vehicle_id, run.trip.trip_id)
            if arrival.at is None or again > arrival.at:
                return  # the timers as at the arrival find it
        self._emit(run, device.silence_ended(run.state.device, run.ctx, before, again, heard_at))

    def _forget(self, vehicle_id: str) -> None:
        """The vehicle's trip has ended (or gone to another worker): no run, no mark."""
        self._runs.pop(vehicle_id, None)
        self._windows.pop(vehicle_id, None)
        self._marked.pop(vehicle_id, None)

    def _write_marks(self, vehicles: Iterable[str] | None = None) -> None:
        """Tell the gate how far the trips of `vehicles` (None: of every vehicle
        followed) are judged (`server.judge_marks`): those whose mark moved since it was
        last written, in one transaction."""
        moved: dict[str, Mark] = {}
        marked = self._marked
        windows = self._windows
        for vehicle_id in windows if vehicles is None else vehicles:
            window = windows.get(vehicle_id)
            if window is None:
                continue  # no trip followed
            upto = window.judged_upto
            gaps = judge_marks.gaps_of(window.missing, upto) if window.missing else ()
            run = self._runs[vehicle_id]
            due = device.silence_due(run.state.device, run.ctx, self._received.get(vehicle_id))
            arrival = self._arrived.get(vehicle_id)
            arrived = arrival.at if arrival is not None and arrival.ticked else None
            mark = Mark(run.trip.trip_id, upto, gaps, due, arrived)
            if marked.get(vehicle_id) != mark:
                moved[vehicle_id] = mark
        if not moved:
            return
        judge_marks.write(self._store.engine, moved, utc_now())
        marked.update(moved)

    def _follow_trips(self) -> None:
        """Follow exactly the trips in transit: forget runs of trips that have ended (a
        released truck that parks and switches off is not DEVICE_OFFLINE), and start
        runs for trips not heard from since they started (a gateway dead from the
        departure gate on is DEVICE_OFFLINE after `silence_s`)."""
        in_transit: dict[str, Trip] = {}
        owns = self._owns
        for status in JUDGED_STATUSES:
            for trip in self._store.list_trips(status, limit=MAX_TRIPS_FOLLOWED):
                if owns is not None and not owns(trip.vehicle_id):
                    continue  # another worker's
                if trip.started_at is not None:  # newest first: keep the newest
                    in_transit.setdefault(trip.vehicle_id, trip)
        arrived = {v: t.trip_id for v, t in in_transit.items() if t.status == "arrived"}
        self._arrived = {v: a for v, a in self._arrived.items() if v in arrived}
        for vehicle_id, trip_id in arrived.items():
            self._arrival_of(vehicle_id, trip_id)
        for vehicle_id, run in list(self._runs.items()):
            current = in_transit.get(vehicle_id)
            if current is None or current.trip_id != run.trip.trip_id:
                self._forget(vehicle_id)
                self._received.pop(vehicle_id, None)
        silent = [v for v in in_transit if v not in self._runs][:ADOPT_PER_TICK]
        for vehicle_id in silent:
            log.info(
                "trip %s of %s: not heard from since it started",
                in_transit[vehicle_id].trip_id,
                vehicle_id,
            )
            self._start_run(vehicle_id, in_transit[vehicle_id])

    def _arrival_of(self, vehicle_id: str, trip_id: str) -> Arrival:
        """The arrival of the vehicle's trip `trip_id`, known or looked up."""
        arrival = self._arrived.get(vehicle_id)
        if arrival is None or arrival.trip_id != trip_id or arrival.at is None:
            with self._store.engine.connect() as conn:
                at = judge_marks.arrived_at(conn, trip_id)
            heard = None if at is None else self._store.last_received_at(vehicle_id, before=at)
            arrival = self._arrived[vehicle_id] = Arrival(trip_id, at, heard)
        return arrival

    def _context(self, trip: Trip) -> TripContext:
        credit = self._store.declaration_credit(trip.declaration_id) or "general"
        profile = next(
            (p for c, p in self._profiles.items() if c == credit), self._profiles["general"]
        )
        return TripContext(
            geography=self._geography,
            route_id=trip.route_id,
            profile=profile,
            trip_id=trip.trip_id,
            started_at=trip.started_at,
            time_limit_s=trip.time_limit_min * 60.0,
            lock_secrets=self._lock_secrets,
        )

    def _rerun(self, run: TripRun, vehicle_id: str, from_key: Key) -> None:
        self.reruns += 1
        self.reruns_from_store += 1
        run.rewind_before(from_key)
        since = run.last_key or (run.started_at, -1)
        log.info(
            "trip %s: late data from %s, judging again from %s",
            run.trip.trip_id,
            from_key[0],
            since[0],
        )
        self._replay(run, vehicle_id, since, upto=None)

    def _replay(self, run: TripRun, vehicle_id: str, after: Key, upto: Key | None) -> int | None:
        """Judge the stored messages after `after`; the lowest number among them."""
        effects: list[Effect] = []
        lowest: int | None = None
        for key, msg in self._store.node_messages(vehicle_id, JUDGED_CHANNELS, after, upto):
            self.progress += 1
            if lowest is None or msg.seq < lowest:
                lowest = msg.seq
            if run.last_key is None or key > run.last_key:
                effects += run.advance(key, msg)
        self._emit(run, effects)
        return lowest

    def follow_trips(self) -> None:
        """Take up the trips that started since the last tick, forget those that ended
        (the first part of `tick`)."""
        with self._lock:
            self._follow_trips()
            self._write_marks()

    def tick(self, now: datetime, clock: float | None = None) -> None:
        """The trips in transit; held messages past their hold; then the timer rules
        (silence, time limit)."""
        with self._lock:
            try:
                self._follow_trips()
                self._tick(now, clock)
                self._write_marks()
            finally:
                self.ticked = time.monotonic()  # tried: the timer loop runs

    def _tick(self, now: datetime, clock: float | None) -> None:
        monotonic = time.monotonic() if clock is None else clock
        for node_id, run in list(self._runs.items()):
            try:
                window = self._windows.get(node_id)
                if window is not None and (window.ahead or window.late):
                    self._judge(run, node_id, *window.release(monotonic, self._hold_s))
                self.progress += 1
                arrival = self._arrived.get(node_id)
                if arrival is None or arrival.at is None or now < arrival.at:
                    # in transit (or arrived after this tick's time was read)
                    if arrival is None or arrival.at is not None:
                        heard = self._received.get(node_id)
                        run.state, effects = tick(run.state, now, run.ctx, heard)
                        self._emit(run, effects)
                    continue
                # at its destination gate since `arrival.at`
                run.state, effects = tick(run.state, arrival.at, run.ctx, arrival.heard)
                self._emit(run, effects)
                arrival.ticked = True
            except Exception:
                self._failed(node_id)

    async def tick_forever(self, interval_s: float = 5.0) -> None:
        while True:
            await asyncio.sleep(interval_s)
            try:
                await asyncio.to_thread(self.tick, utc_now())
            except Exception:
                log.exception("rule timers failed")

    def _emit(self, run: TripRun, effects: list[Effect]) -> None:
        if effects:
            self._sink.apply(run.trip, effects)

"""The judge's ordering, pure: which of a vehicle's messages are judged, in what order,
and from where again when one comes late (`server.judge` applies it over the store).

`SeqWindow` holds what lies beyond a gap in a node's sequence numbers until the gap
fills (or the hold passes); `TripRun` is a trip's rule state with the (ts, seq) key of
the last event judged, checkpoints along the way and its last events, to go back in
memory; `events_to_judge`, `rerun_from` and `merged` decide what a batch judges.
"""

from __future__ import annotations

import bisect
import zlib
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from contract.payloads import EdgeMessage
from contract.topics import EDGE_CHANNELS
from server.rules.alarms import Effect
from server.rules.engine import evaluate
from server.rules.inputs import TripContext
from server.rules.state import TripState
from server.store.trip import Trip

#: Channels whose messages the trip rules look at.
JUDGED_CHANNELS = ("position", "lock", "availability", "health")
#: Trip statuses whose messages are judged: in transit, and arrived at the destination
#: gate with the decision waiting for the judge to catch up (server.gates.judged).
JUDGED_STATUSES = ("in_transit", "arrived")
#: Channels the judge is handed: every one a truck numbers (`command/result` besides the
#: judged ones), so that its sequence window has no hole where a truck answered a
#: command; it judges only `JUDGED_CHANNELS`.
SEQUENCED_CHANNELS = tuple(EDGE_CHANNELS["truck"])


def judge_part(vehicle_id: str, parts: int) -> int:
    """Which of `parts` judge workers judges `vehicle_id`'s trips: the same in every
    process and on every run (CRC-32 of the id, not Python's salted `hash`), so that all
    of a vehicle's messages go to one worker, which judges them in fix-time order."""
    return zlib.crc32(vehicle_id.encode()) % parts


#: Keep a checkpoint every this many judged events, and at most this many per trip.
CHECKPOINT_EVERY = 50
MAX_CHECKPOINTS = 2000
#: The last events a run keeps with the state before each, to judge a message that is late
#: by a few events again without reading the store.
RECENT_EVENTS = 16

#: A message's place in fix-time order: (its ts, its seq).
Key = tuple[datetime, int]
Event = tuple[Key, EdgeMessage]


@dataclass
class TripRun:
    trip: Trip
    ctx: TripContext
    state: TripState = field(default_factory=TripState)
    last_key: Key | None = None
    checkpoints: list[tuple[Key, TripState]] = field(default_factory=list)
    judged: int = 0
    #: The last events judged, in order, each with the state before it.
    recent: deque[tuple[Key, EdgeMessage, TripState]] = field(
        default_factory=lambda: deque(maxlen=RECENT_EVENTS)
    )

    @property
    def started_at(self) -> datetime:
        """When the trip started: a run is made only for a trip in transit."""
        if self.trip.started_at is None:
            raise ValueError(f"trip {self.trip.trip_id} has not started")
        return self.trip.started_at

    def advance(self, key: Key, message: EdgeMessage) -> list[Effect]:
        self.recent.append((key, message, self.state))
        self.state, effects = evaluate(self.state, message, self.ctx)
        self.last_key = key
        self.judged += 1
        if self.judged % CHECKPOINT_EVERY == 0:
            self.checkpoints.append((key, self.state))
            if len(self.checkpoints) > MAX_CHECKPOINTS:
                del self.checkpoints[: len(self.checkpoints) // 2 : 2]  # thin the oldest half
        return effects

    def rewind_before(self, key: Key) -> None:
        """Go back to the newest checkpoint strictly before `key` (or the trip start)."""
        keys = [k for k, _ in self.checkpoints]
        index = bisect.bisect_left(keys, key)
        del self.checkpoints[index:]
        self.recent.clear()
        if self.checkpoints:
            self.last_key, self.state = self.checkpoints[-1]
        else:
            self.last_key, self.state = None, TripState()

    def rewind_recent(self, key: Key) -> list[tuple[Key, EdgeMessage]] | None:
        """Go back in memory to the state before the first event at or after `key`, and
        return the events undone (to judge again); None, with nothing changed, when an
        event that old is no longer among the recent ones."""
        if self.last_key is None or key > self.last_key:
            return []  # nothing judged after it
        keys = [k for k, _, _ in self.recent]
        index = bisect.bisect_left(keys, key)
        if index == 0:
            return None  # the events before `key` are not all here: from the store
        undone = [(k, m) for k, m, _ in list(self.recent)[index:]]
        self.state = self.recent[index][2]
        self.last_key = keys[index - 1]
        for _ in range(len(undone)):
            self.recent.pop()
        del self.checkpoints[bisect.bisect_left([k for k, _ in self.checkpoints], key) :]
        return undone


@dataclass
class SeqWindow:
    """Which of a node's sequence numbers have arrived; holds messages beyond a gap.

    `missing` are numbers given up after the hold; when they turn up later (a backlog
    slower than the hold), they are collected in `late` and judged together once the
    holes below them have filled, or the hold has passed again.
    """

    upto: int
    ahead: dict[int, tuple[Key, EdgeMessage]] = field(default_factory=dict)
    held_since: float | None = None
    missing: set[int] = field(default_factory=set)
    late: list[tuple[Key, EdgeMessage]] = field(default_factory=list)
    late_since: float | None = None

    @property
    def judged_upto(self) -> int:
        """Every message numbered this or below has been judged: up to the last without a
        gap, short of the first late message not judged yet."""
        if self.late:
            return min(self.upto, min(m.seq for _, m in self.late) - 1)
        return self.upto

    def add(self, key: Key, message: EdgeMessage, now: float) -> None:
        if message.seq <= self.upto:
            self.missing.discard(message.seq)
            self.late.append((key, message))
            if self.late_since is None:
                self.late_since = now
        else:
            self.ahead[message.seq] = (key, message)

    def release(
        self, now: float, hold_s: float
    ) -> tuple[list[tuple[Key, EdgeMessage]], list[tuple[Key, EdgeMessage]]]:
        """(in-order messages now complete, late messages to judge again)."""
        ready = []
        while self.upto + 1 in self.ahead:
            self.upto += 1
            ready.append(self.ahead.pop(self.upto))
        if not self.ahead:
            self.held_since = None
        elif self.held_since is None:
            self.held_since = now
        elif now - self.held_since >= hold_s:
            top = max(self.ahead)
            self.missing.update(s for s in range(self.upto + 1, top) if s not in self.ahead)
            ready += [self.ahead.pop(seq) for seq in sorted(self.ahead)]
            self.upto = top
            self.held_since = None
            if len(self.missing) > 100_000:  # a node that lost that much is judged as is
                self.missing.clear()
        late: list[tuple[Key, EdgeMessage]] = []
        if self.late:
            lowest = min(m.seq for _, m in self.late)
            holes_left = any(seq > lowest for seq in self.missing)
            expired = self.late_since is not None and now - self.late_since >= hold_s
            if not holes_left or expired:
                late, self.late, self.late_since = self.late, [], None
        return ready, late


def holes(numbers: Iterable[int], first: int) -> set[int]:
    """The numbers from `first` to the highest of `numbers` that `numbers` lacks (at most
    100,000: a node that lost more is judged as it is)."""
    have = sorted(n for n in numbers if n >= first)
    missing: set[int] = set()
    expected = first
    for n in have:
        missing.update(range(expected, min(n, expected + 100_000 - len(missing))))
        expected = n + 1
    return missing


def events_to_judge(items: Iterable[Event], started: datetime) -> list[Event]:
    """The events of `items` the rules look at (judged channels, from the trip's start),
    in fix-time order."""
    keep = (e for e in items if e[0][0] >= started and channel_of(e[1]) in JUDGED_CHANNELS)
    return sorted(keep, key=lambda e: e[0])


def rerun_from(last_key: Key | None, events: list[Event], late_events: list[Event]) -> Key | None:
    """Where judging must start again: the first late event, or the first of `events`
    when it is not after the last event judged; None when everything comes after."""
    start = late_events[0][0] if late_events else None
    if events and last_key is not None and events[0][0] <= last_key:
        start = min(events[0][0], start or events[0][0])
    return start


def merged(undone: list[Event], events: list[Event], late_events: list[Event]) -> list[Event]:
    """The events undone in memory and the new ones, once each, in fix-time order."""
    return sorted(dict([*undone, *events, *late_events]).items(), key=lambda e: e[0])


_CHANNEL_OF = {
    "Position": "position",
    "LockReport": "lock",
    "Availability": "availability",
    "Health": "health",
}


def channel_of(message: EdgeMessage) -> str:
    return _CHANNEL_OF.get(type(message).__name__, "other")

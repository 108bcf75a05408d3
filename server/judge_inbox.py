"""The judge worker's inbox: the parent's batches, read from the pipe as they come, taken
by the judge together when it was busy.

A judge's step costs mostly per vehicle in it, not per message: the rules' state, the
trips' heads, the vehicle's mark (`server.judge_marks`) are read or written once a step
for each vehicle of the batch. The ingest stores and hands over batches of at most
`ingest.batch_max` (500); 1,000 trucks then have one position each in a batch, and
judging them cost 65–95 µs a position against 47 µs for batches of 2,000 (the bench's
trucks and geography, the judge alone, 2026-12-08). So when the judge falls behind —
the moment its speed matters, a backlog after an outage or a worker replaced — the
batches that came meanwhile are judged as one step, up to `MERGE_MAX` messages.

Two limits keep a merged step the same as the steps it replaces:

- Only batches received within `span` of each other are merged, `span` being less than
  any credit profile's `silence_s`: the judge looks for a truck's silence between the
  last message before a step and the first in it (`Judge._silence_ended`), so no silence
  long enough to be an alarm may fall between two messages of one step.
- The order is kept: batches are joined in the order they were sent, and a vehicle's
  messages keep theirs.

Back-pressure stays as it was: the reader stops reading once `MERGE_MAX` messages wait,
the pipe fills, and the ingest waits for the judge.
"""

from __future__ import annotations

import threading
from collections import deque
from datetime import UTC, datetime, timedelta
from typing import Final

from server.child import ParentPipe
from server.pipe_events import Wire

#: Most messages judged in one step, and most held waiting for the judge.
MERGE_MAX: Final = 4_000


class Inbox:
    def __init__(self, pipe: ParentPipe, span: timedelta, merge_max: int = MERGE_MAX) -> None:
        self._pipe = pipe
        self._span = span
        self._merge_max = merge_max
        self._batches: deque[list[Wire]] = deque()
        self._held = 0
        self._closed = False
        self._changed = threading.Condition()
        #: batches taken as part of another (for the metrics and tests)
        self.merged = 0

    @property
    def held(self) -> int:
        """Messages read from the pipe and not taken yet."""
        return self._held

    def fill(self) -> None:
        """Read the parent's batches until it is gone (a thread of its own)."""
        while (event := self._pipe.receive()) is not None:
            with self._changed:
                while self._held >= self._merge_max:
                    self._changed.wait()
                self._batches.append(event.messages)
                self._held += len(event.messages)
                self._changed.notify_all()
        with self._changed:
            self._closed = True
            self._changed.notify_all()

    def take(self) -> list[Wire] | None:
        """The next step's messages: the oldest batch and those after it that may join it;
        None once the parent is gone and nothing is left."""
        with self._changed:
            while not self._batches and not self._closed:
                self._changed.wait()
            if not self._batches:
                return None
            wire = list(self._batches.popleft())
            bounds = _bounds(wire)
            while self._batches and len(wire) + len(self._batches[0]) <= self._merge_max:
                joined = _join(bounds, _bounds(self._batches[0]))
                if joined is not None and joined[1] - joined[0] >= self._span:
                    break  # a silence could fall between them: a step of its own
                wire.extend(self._batches.popleft())
                bounds = joined
                self.merged += 1
            self._held -= len(wire)
            self._changed.notify_all()
            return wire


Bounds = tuple[datetime, datetime] | None


#: Bounds that join nothing (receive times that cannot be compared: never merged).
_APART: Final = (datetime.min.replace(tzinfo=UTC), datetime.max.replace(tzinfo=UTC))


def _bounds(wire: list[Wire]) -> Bounds:
    """The first and last receive time of `wire` (None: empty)."""
    if not wire:
        return None
    try:
        received = [item[2] for item in wire]
        return min(received), max(received)
    except TypeError:  # a naive time beside aware ones: a bug upstream, judged alone
        return _APART


def _join(a: Bounds, b: Bounds) -> Bounds:
    if a is None or b is None:
        return a or b
    try:
        return min(a[0], b[0]), max(a[1], b[1])
    except TypeError:
        return _APART

"""The events on the pipes between the server process and its children (`server.child`),
one frozen dataclass each, pickled.

The parent sends the judge worker `Batch`. The children send the parent `Ready`,
`Connected`, `AlarmChanged`, `Judged`, `BadRows`, `PassageDecided`, `PassageDropped` and
`Rejected`. A handler dispatches on the type (`match`); an event of a type a side does
not expect is logged and ignored.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

#: One stored message as it crosses the pipe: (channel, stored JSON, received at).
Wire = tuple[str, str, datetime]


# ---- parent → child --------------------------------------------------------------------


@dataclass(frozen=True)
class Batch:
    """Stored messages for the judge worker to judge."""

    messages: list[Wire]


ParentEvent = Batch


# ---- child → parent --------------------------------------------------------------------


@dataclass(frozen=True)
class Ready:
    """The judge worker has its store and geography and takes batches."""


@dataclass(frozen=True)
class Connected:
    """The gate worker's broker connections are all up (`up`), or one went down."""

    up: bool


@dataclass(frozen=True)
class AlarmChanged:
    """A child raised, repeated or cleared this alarm (for the console stream)."""

    alarm_id: int


@dataclass(frozen=True)
class Judged:
    """The judge worker has judged this many of the messages it was sent."""

    count: int


@dataclass(frozen=True)
class Alive:
    """The judge worker gets on with its work, or waits for some (its heartbeat, every
    second: `server.judge_worker`)."""


@dataclass(frozen=True)
class BadRows:
    """This many stored messages of a batch did not decode (logged, left out)."""

    count: int


@dataclass(frozen=True)
class PassageDecided:
    """The gate worker decided and recorded this passage."""

    passage_id: str


@dataclass(frozen=True)
class PassageDropped:
    """A passage from a node that is not a configured gate was dropped unstored."""

    node_id: str


@dataclass(frozen=True)
class Rejected:
    """The gate worker's ingest refused a message (for the parent's /metrics)."""

    channel: str
    reason: str


ChildEvent = (
    Ready
    | Connected
    | AlarmChanged
    | Judged
    | Alive
    | BadRows
    | PassageDecided
    | PassageDropped
    | Rejected
)

"""Every MQTT topic of the contract is built and parsed here; nobody formats one by hand."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Final, Literal, get_args

from contract.ids import is_node_id
from contract.version import TOPIC_PREFIX

Kind = Literal["truck", "gate"]
Channel = Literal[
    "availability",
    "position",
    "lock",
    "health",
    "passage",
    "lane",
    "command",
    "command/result",
    "ack",
    "declared",
]

KINDS: Final[tuple[str, ...]] = get_args(Kind)
CHANNELS: Final[frozenset[str]] = frozenset(get_args(Channel))
#: Which channels each kind of node publishes (edge→server).
EDGE_CHANNELS: Final[dict[str, tuple[str, ...]]] = {
    "truck": ("availability", "position", "lock", "health", "command/result"),
    "gate": ("availability", "health", "passage", "lane", "command/result"),
}


class TopicError(ValueError):
    """A topic that is not part of the contract."""


def _check(kind: str, node_id: str) -> None:
    if kind not in KINDS:
        raise TopicError(f"kind {kind!r} is not one of {', '.join(KINDS)}")
    if not is_node_id(node_id):
        raise TopicError(f"node id {node_id!r} must match [A-Za-z0-9_-]{{1,64}}")


def build(kind: Kind, node_id: str, channel: Channel) -> str:
    _check(kind, node_id)
    return f"{TOPIC_PREFIX}/{kind}/{node_id}/{channel}"


def availability(kind: Kind, node_id: str) -> str:
    return build(kind, node_id, "availability")


def health(kind: Kind, node_id: str) -> str:
    return build(kind, node_id, "health")


def position(node_id: str) -> str:
    return build("truck", node_id, "position")


def lock(node_id: str) -> str:
    return build("truck", node_id, "lock")


def passage(node_id: str) -> str:
    return build("gate", node_id, "passage")


def lane(node_id: str) -> str:
    """A gate lane's state and traffic light (retained)."""
    return build("gate", node_id, "lane")


def command(kind: Kind, node_id: str) -> str:
    return build(kind, node_id, "command")


def command_result(kind: Kind, node_id: str) -> str:
    return build(kind, node_id, "command/result")


def ack(kind: Kind, node_id: str) -> str:
    """Server→edge: which of the node's seqs the server has durably stored."""
    return build(kind, node_id, "ack")


def declared(node_id: str) -> str:
    """Server→edge (retained): a truck's open trips and their locks."""
    return build("truck", node_id, "declared")


@dataclass(frozen=True, slots=True)
class TopicInfo:
    kind: Kind
    node_id: str
    channel: Channel


@functools.lru_cache(maxsize=65_536)  # the same few topics per node, thousands a second
def parse(topic: str) -> TopicInfo:
    """Split a contract topic into kind, node id and channel, or raise `TopicError`."""
    prefix = TOPIC_PREFIX + "/"
    if not topic.startswith(prefix):
        raise TopicError(f"topic {topic!r} does not start with {prefix!r}")
    parts = topic[len(prefix) :].split("/", 2)
    if len(parts) != 3:
        raise TopicError(f"topic {topic!r} is not {prefix}<kind>/<node_id>/<channel>")
    kind, node_id, channel = parts
    _check(kind, node_id)
    if channel not in CHANNELS:
        raise TopicError(f"topic {topic!r} has unknown channel {channel!r}")
    return TopicInfo(kind=kind, node_id=node_id, channel=channel)  # type: ignore[arg-type]


PASSAGE_FILTER = f"{TOPIC_PREFIX}/gate/+/passage"
#: Every truck's `declared` list (the server writes them; `server.declared`).
DECLARED_FILTER = f"{TOPIC_PREFIX}/truck/+/declared"


def server_subscriptions(*, passages: bool | None = None) -> list[str]:
    """The filters the server subscribes to (edge→server channels). `passages=True`
    gives only the gate passages (the server takes them on a connection of their own,
    so that a gate never waits behind a backlog of positions), `False` all but them."""
    filters = [
        f"{TOPIC_PREFIX}/+/+/availability",
        f"{TOPIC_PREFIX}/+/+/health",
        f"{TOPIC_PREFIX}/truck/+/position",
        f"{TOPIC_PREFIX}/truck/+/lock",
        PASSAGE_FILTER,
        f"{TOPIC_PREFIX}/gate/+/lane",
        f"{TOPIC_PREFIX}/+/+/command/result",
    ]
    if passages is not None:
        filters = [f for f in filters if (f == PASSAGE_FILTER) == passages]
    return filters

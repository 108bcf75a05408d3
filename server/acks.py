"""The server's acknowledgement to the edge: which of a node's seqs are durably stored.

The ingest hands every message of a batch to `AckBatcher.add` once the store has
committed the batch (new messages and duplicates of stored ones alike: both are on
disk), and publishes what `AckBatcher.take` returns every `ingest.ack_interval_s`:
one `Ack` per node that has news, at most one per node per interval however many
messages it sent, and at most `ingest.ack_max_per_s` a second in all: beyond that, nodes
wait their turn, longest-waiting first, and each acknowledgement covers more of their
messages (publishing one costs the server about as much as storing a position). The
node removes a message from its outbox only when an acknowledgement covers it
(docs/edge-outbox.md#server-acknowledgement).

A message the ingest refused is acknowledged too once its dead letter is committed
(`AckBatcher.add_refused`), so that the node drops it instead of sending it again
at every reconnect: the dead-letter store keeps it. Only where the topic names the
node (an edge channel of its kind: the broker's ACL lets no one else publish there)
and the payload names its seq; never a refusal of the server's own failure
(`internal`), which a fixed server would store when the node sends it again.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from itertools import islice
from typing import Final

from pydantic import ConfigDict

from contract import topics
from contract.payloads import MAX_ACK_RANGES, Ack, ContractModel, PayloadError, Seq, decode
from contract.topics import Kind
from server.store.database import IncomingMessage
from server.store.dead_letters import DeadLetter

#: The kind of node each channel comes from, where the channel alone says it.
_CHANNEL_KINDS: Final[dict[str, Kind]] = {
    "position": "truck",
    "lock": "truck",
    "passage": "gate",
    "lane": "gate",
}


def node_kind(item: IncomingMessage) -> Kind | None:
    """The kind of node that sent `item` (its topic's, or its channel's)."""
    return item.kind or _CHANNEL_KINDS.get(item.channel)


class _Envelope(ContractModel):
    """The one field of a refused edge payload the acknowledgement needs."""

    model_config = ConfigDict(extra="ignore", strict=True)

    seq: Seq


def refused_seq(letter: DeadLetter) -> tuple[Kind, str, int] | None:
    """(kind, node id, seq) to acknowledge for a refused message, or None: the topic
    must be an edge channel of its node's kind (which only that node may publish on),
    the payload a JSON object within the contract's bounds with a valid `seq`, and the
    refusal not the server's own failure (`internal`)."""
    if letter.reason == "internal":
        return None
    try:
        info = topics.parse(letter.topic)
    except topics.TopicError:
        return None
    if info.channel not in topics.EDGE_CHANNELS[info.kind]:
        return None
    try:
        envelope = decode(_Envelope, letter.raw)
    except PayloadError:
        return None
    return info.kind, info.node_id, envelope.seq


def seq_ranges(seqs: Iterable[int]) -> list[tuple[int, int]]:
    """Sorted, merged `(first, last)` ranges covering exactly `seqs`."""
    ranges: list[tuple[int, int]] = []
    for seq in sorted(set(seqs)):
        if ranges and ranges[-1][1] + 1 == seq:
            ranges[-1] = (ranges[-1][0], seq)
        else:
            ranges.append((seq, seq))
    return ranges


class AckBatcher:
    """The seqs committed since the last `take`, per node."""

    def __init__(self, max_ranges: int = MAX_ACK_RANGES) -> None:
        self._max_ranges = max_ranges
        self._pending: dict[tuple[Kind, str], set[int]] = {}

    def __len__(self) -> int:
        """Nodes waiting for an acknowledgement."""
        return len(self._pending)

    def add(self, committed: Iterable[IncomingMessage]) -> None:
        """Note the messages of a committed batch (call only after the commit)."""
        for item in committed:
            kind = node_kind(item)
            if kind is not None:
                key = (kind, item.message.node_id)
                self._pending.setdefault(key, set()).add(item.message.seq)

    def add_refused(self, letters: Iterable[DeadLetter]) -> None:
        """Note refused messages whose dead letters are committed (`refused_seq`)."""
        for letter in letters:
            found = refused_seq(letter)
            if found is not None:
                kind, node_id, seq = found
                self._pending.setdefault((kind, node_id), set()).add(seq)

    def take(self, now: datetime, limit: int | None = None) -> list[tuple[str, bytes]]:
        """`(topic, payload)` of the acknowledgements due, and forget them.

        A node with more than `max_ranges` ranges (gaps) gets several messages. With
        `limit`, at most that many nodes are acknowledged, those waiting longest first;
        the others keep their seqs (and gather more) for a later `take`: under load, one
        acknowledgement then covers several of a node's messages."""
        if limit is None or len(self._pending) <= limit:
            pending, self._pending = self._pending, {}
        else:  # a dict keeps its insertion order: the nodes first noted come first
            pending = {key: self._pending.pop(key) for key in list(islice(self._pending, limit))}
        out: list[tuple[str, bytes]] = []
        for (kind, node_id), seqs in pending.items():
            ranges = seq_ranges(seqs)
            topic = topics.ack(kind, node_id)
            for start in range(0, len(ranges), self._max_ranges):
                part = ranges[start : start + self._max_ranges]
                out.append((topic, Ack(node_id=node_id, ts=now, ranges=part).to_json()))
        return out

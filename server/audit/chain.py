"""The audit chain's hashing and verification rules: pure functions, no database.

Entry `n` stores `prev_hash` = hash of entry `n-1` (the genesis hash for entry 1) and
`hash` = SHA-256 (hex) of the canonical JSON (`contract.canonical`) of
`{seq, at, actor, action, object_type, object_id, details, prev_hash}`, with `at` as
RFC 3339 UTC with milliseconds and `details` as its parsed JSON value.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from contract.canonical import canonical_json
from contract.ids import format_ts

GENESIS_HASH = "0" * 64


@dataclass(frozen=True, slots=True)
class AuditEntry:
    seq: int
    at: datetime
    actor: str
    action: str
    object_type: str
    object_id: str
    details: str  # canonical JSON text, exactly as stored
    prev_hash: str
    hash: str

    def as_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "at": format_ts(self.at),
            "actor": self.actor,
            "action": self.action,
            "object_type": self.object_type,
            "object_id": self.object_id,
            "details": json.loads(self.details),
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }


def entry_hash(
    seq: int,
    at: datetime,
    actor: str,
    action: str,
    object_type: str,
    object_id: str,
    details: str,
    prev_hash: str,
) -> str:
    """The hash an entry with these fields must carry."""
    try:
        parsed_details: Any = json.loads(details)
    except ValueError:
        parsed_details = {"unparseable": details}  # an edit made it invalid: hash won't match
    body = {
        "seq": seq,
        "at": format_ts(at),
        "actor": actor,
        "action": action,
        "object_type": object_type,
        "object_id": object_id,
        "details": parsed_details,
        "prev_hash": prev_hash,
    }
    return hashlib.sha256(canonical_json(body)).hexdigest()


def _hash_as(entry: AuditEntry, seq: int) -> str:
    return entry_hash(
        seq,
        entry.at,
        entry.actor,
        entry.action,
        entry.object_type,
        entry.object_id,
        entry.details,
        entry.prev_hash,
    )


@dataclass(frozen=True, slots=True)
class Verification:
    """The outcome of walking the chain; `first_bad_seq` names the first broken entry."""

    ok: bool
    entries: int
    first_bad_seq: int | None = None
    reason: str | None = None
    #: how many signed checkpoints were checked (None: no checkpoints configured)
    checkpoints: int | None = None
    #: where the checkpoint that failed was read ("file:line")
    checkpoint: str | None = None

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"ok": self.ok, "entries": self.entries}
        for name in ("first_bad_seq", "reason", "checkpoints", "checkpoint"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        return out


def verify_chain(
    entries: Sequence[AuditEntry],
    head_seq: int | None = None,
    head_hash: str | None = None,
) -> Verification:
    """Walk `entries` (in seq order) and report the first edited, deleted, inserted or
    reordered entry. `head_seq`/`head_hash` are the chain head recorded beside the log
    (or an external anchor): entries missing at the tail are reported against it.
    """
    count = len(entries)
    by_hash = {e.hash: e for e in entries}
    prev_seq, prev_hash = 0, GENESIS_HASH
    before_prev_hash: str | None = None
    for entry in entries:
        expected = prev_seq + 1
        if entry.seq != expected:
            return Verification(
                False,
                count,
                expected,
                f"entry {expected} is missing: entry {prev_seq} is followed by entry "
                f"{entry.seq} (deleted or renumbered)",
            )
        if _hash_as(entry, entry.seq) != entry.hash:
            return _diagnose_bad_hash(entry, prev_seq, before_prev_hash, by_hash, entries)
        if entry.prev_hash != prev_hash:
            if entry.prev_hash == before_prev_hash:
                return Verification(
                    False,
                    count,
                    prev_seq,
                    f"entry {prev_seq} was inserted: entry {entry.seq} was chained "
                    f"directly after entry {prev_seq - 1}",
                )
            return Verification(
                False,
                count,
                entry.seq,
                f"entry {entry.seq} does not chain to entry {prev_seq}: its prev_hash "
                f"differs from entry {prev_seq}'s hash (replaced or rehashed)",
            )
        before_prev_hash, prev_seq, prev_hash = prev_hash, entry.seq, entry.hash
    if head_seq is not None:
        if head_seq > prev_seq:
            return Verification(
                False,
                count,
                prev_seq + 1,
                f"entries {prev_seq + 1}..{head_seq} are missing: the chain head records "
                f"seq {head_seq} but the log ends at {prev_seq} (tail deleted)",
            )
        if head_seq < prev_seq:
            return Verification(
                False,
                count,
                head_seq + 1,
                f"entries {head_seq + 1}..{prev_seq} lie beyond the chain head "
                f"(seq {head_seq}): appended outside the audit log's API",
            )
        if head_hash is not None and head_hash != prev_hash:
            return Verification(
                False,
                count,
                head_seq,
                f"entry {head_seq}'s hash differs from the one the chain head records "
                f"(the chain was rewritten)",
            )
    return Verification(True, count)


def check_anchor(entries: Sequence[AuditEntry], seq: int, digest: str) -> Verification:
    """Check a verified chain against an anchor (a seq and hash copied out of the
    database earlier): the anchored entry must still be there with the same hash."""
    count = len(entries)
    if seq == 0:
        return Verification(True, count)
    last = entries[-1].seq if entries else 0
    if last < seq:
        return Verification(
            False,
            count,
            last + 1,
            f"the log ends at seq {last} but the anchor records seq {seq}: entries "
            f"{last + 1}..{seq} were deleted (with the chain head)",
        )
    anchored = next((e for e in entries if e.seq == seq), None)
    if anchored is None or anchored.hash != digest:
        return Verification(
            False,
            count,
            seq,
            f"entry {seq}'s hash differs from the anchor's: the chain up to it was rewritten",
        )
    return Verification(True, count)


def _diagnose_bad_hash(
    entry: AuditEntry,
    prev_seq: int,
    before_prev_hash: str | None,
    by_hash: dict[str, AuditEntry],
    entries: Sequence[AuditEntry],
) -> Verification:
    """Say what happened to an entry whose hash does not match (only run on failure)."""
    seq, count = entry.seq, len(entries)
    last = entries[-1].seq if entries else seq
    candidates = [seq - 1, seq + 1, *range(1, last + 2)]
    written_as = next((s for s in candidates if _hash_as(entry, s) == entry.hash), None)
    if written_as is None:
        return Verification(
            False, count, seq, f"entry {seq} was edited: its content does not match its hash"
        )
    if written_as == seq - 1 and entry.prev_hash == before_prev_hash:
        return Verification(
            False,
            count,
            prev_seq,
            f"entry {prev_seq} was inserted: the entry now at seq {seq} was written as "
            f"seq {seq - 1} and chained after entry {prev_seq - 1}",
        )
    if entry.prev_hash != GENESIS_HASH and entry.prev_hash not in by_hash:
        return Verification(
            False,
            count,
            seq,
            f"an entry was deleted and the rest renumbered: the entry stored at seq {seq} "
            f"was written as seq {written_as}",
        )
    return Verification(
        False,
        count,
        seq,
        f"entries reordered: the entry stored at seq {seq} was written as seq {written_as}",
    )

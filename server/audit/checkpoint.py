"""Signed checkpoints of the audit chain: what they say, and checking a chain against them.

A checkpoint is one line, `bondwatch-audit-checkpoint {json}`, the JSON being the
canonical JSON (`contract.canonical`) of

    {"v": 1, "seq": …, "hash": …, "count": …, "at": …, "key": …, "signature": …}

— the chain head (the last entry's seq and hash) and the number of entries, at `at`
(RFC 3339 UTC, milliseconds), signed with the audit log's own Ed25519 key: `signature`
is the base64 signature of the canonical JSON of every other field, `key` the first 16
hex digits of the SHA-256 of the raw public key. The line is written outside the
database (server.audit.sinks), so that rewriting the database — even with every hash
recomputed — leaves the checkpoints naming hashes the chain no longer has.

Pure: no clocks, no I/O.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from contract.canonical import canonical_json
from contract.ids import format_ts, parse_ts
from server.audit.chain import AuditEntry, Verification

#: Starts every checkpoint line, so that one can be found among other syslog lines.
MARKER = "bondwatch-audit-checkpoint"
VERSION = 1


def key_id(key: Ed25519PublicKey) -> str:
    """A short, stable name of a public key: 16 hex digits of SHA-256 of its raw bytes."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Checkpoint:
    seq: int
    hash: str
    count: int
    at: datetime
    key: str
    signature: str
    #: where it was read ("file:line"); not signed
    source: str = field(default="", compare=False)

    def body(self) -> dict[str, Any]:
        """What the signature covers."""
        return {
            "v": VERSION,
            "seq": self.seq,
            "hash": self.hash,
            "count": self.count,
            "at": format_ts(self.at),
            "key": self.key,
        }

    def line(self) -> str:
        """The checkpoint as written: the marker and its canonical JSON, no newline."""
        text = canonical_json({**self.body(), "signature": self.signature}).decode("utf-8")
        return f"{MARKER} {text}"

    def describe(self) -> str:
        where = f"{self.source} " if self.source else ""
        return f"checkpoint {where}(seq {self.seq}, {self.count} entries, {format_ts(self.at)})"


def sign_checkpoint(
    seq: int, digest: str, count: int, at: datetime, key: Ed25519PrivateKey
) -> Checkpoint:
    at = at.replace(microsecond=at.microsecond // 1000 * 1000)  # as written: milliseconds
    unsigned = Checkpoint(seq, digest, count, at, key_id(key.public_key()), "")
    signature = base64.b64encode(key.sign(canonical_json(unsigned.body()))).decode("ascii")
    return Checkpoint(seq, digest, count, unsigned.at, unsigned.key, signature)


def signature_holds(checkpoint: Checkpoint, key: Ed25519PublicKey) -> bool:
    try:
        raw = base64.b64decode(checkpoint.signature, validate=True)
        key.verify(raw, canonical_json(checkpoint.body()))
    except (binascii.Error, ValueError, InvalidSignature):
        return False
    return True


@dataclass(frozen=True, slots=True)
class Damaged:
    """A line that carries the checkpoint marker but is not a checkpoint."""

    source: str
    error: str


def parse_line(line: str, source: str) -> Checkpoint | Damaged | None:
    """The checkpoint in one line (syslog adds its own prefix), or None when it has none."""
    at = line.find(MARKER + " ")
    if at < 0:
        return None
    try:
        record = json.loads(line[at + len(MARKER) + 1 :])
        if not isinstance(record, Mapping) or record.get("v") != VERSION:
            raise ValueError(f"not a version {VERSION} checkpoint record")
        checkpoint = Checkpoint(
            seq=_int(record["seq"]),
            hash=_text(record["hash"]),
            count=_int(record["count"]),
            at=parse_ts(_text(record["at"])),
            key=_text(record["key"]),
            signature=_text(record["signature"]),
            source=source,
        )
    except (ValueError, KeyError, TypeError) as err:
        return Damaged(source, f"{err.__class__.__name__}: {err}")
    return checkpoint


def _int(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{value!r} is not a count")
    return value


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not text")
    return value


def check_checkpoints(
    entries: Sequence[AuditEntry],
    checkpoints: Sequence[Checkpoint | Damaged],
    key: Ed25519PublicKey,
) -> Verification:
    """Check a chain (already verified on its own) against checkpoints, oldest first.

    Reports the first checkpoint that is damaged, not signed by `key`, records fewer
    entries than an earlier one, or names an entry the chain no longer has with that
    hash — and, for a rewrite, the newest checkpoint before it that still holds, so the
    rewritten entries lie between the two.
    """
    count = len(entries)
    hashes = {e.seq: e.hash for e in entries}
    last_seq = entries[-1].seq if entries else 0
    expected_key = key_id(key)
    checked = len(checkpoints)
    holding: Checkpoint | None = None  # the newest checkpoint that held so far

    def broken(seq: int | None, cp: Checkpoint | Damaged, reason: str) -> Verification:
        return Verification(False, count, seq, reason, checkpoints=checked, checkpoint=cp.source)

    for cp in checkpoints:
        if isinstance(cp, Damaged):
            return broken(None, cp, f"checkpoint {cp.source} is damaged: {cp.error}")
        if cp.key != expected_key:
            return broken(
                None,
                cp,
                f"{cp.describe()} is signed by key {cp.key}, not the audit key {expected_key}",
            )
        if not signature_holds(cp, key):
            return broken(None, cp, f"{cp.describe()} has a bad signature: forged or altered")
        since = (
            f"; the newest checkpoint before it that holds is {holding.describe()}, so the "
            f"rewrite lies in entries {holding.seq + 1}..{cp.seq}"
            if holding is not None
            else ""
        )
        if holding is not None and (cp.count < holding.count or cp.seq < holding.seq):
            return broken(
                cp.seq + 1,
                cp,
                f"{cp.describe()} records fewer entries than the earlier "
                f"{holding.describe()}: the chain was cut between them",
            )
        if count < cp.count or last_seq < cp.seq:
            first_missing = min(last_seq, count) + 1
            return broken(
                first_missing,
                cp,
                f"the log holds {count} entries up to seq {last_seq}, but {cp.describe()} "
                f"recorded {cp.count} up to seq {cp.seq}: entries were deleted{since}",
            )
        if cp.seq > 0 and hashes.get(cp.seq) != cp.hash:
            return broken(
                cp.seq,
                cp,
                f"entry {cp.seq} no longer has the hash {cp.describe()} recorded: the chain "
                f"up to it was rewritten (hashes recomputed){since}",
            )
        holding = cp
    return Verification(True, count, checkpoints=checked)

"""Bounds of every MQTT payload, checked on the raw bytes before any JSON parser sees them.

A payload is refused, cheaply and in this order, when it is larger than its channel's
limit, not UTF-8, nested deeper than `MAX_DEPTH`, or holds a run of more than
`MAX_NUMBER_DIGITS` digits outside strings (Python's `int` refuses to convert more than
4,300 digits, and a number that long is never a measurement). Only then does pydantic
parse it, against models whose every string and list is bounded too (contract/payloads.py;
tests/contract/test_limits.py keeps them bounded and within these byte limits).

Each refusal has a reason from `REJECT_REASONS`, the closed vocabulary of the server's
`bondwatch_ingest_rejected_total{channel,reason}` counter and of its dead letters
(docs/contract.md, "Limits").
"""

from __future__ import annotations

import re
from typing import Final, Literal, get_args

#: Why a message was refused. The first nine are the contract's own (`PayloadError.reason`);
#: the server adds the topic's, the clock's and its own failure.
RejectReason = Literal[
    "too_large",  # more bytes than the channel allows
    "not_utf8",  # not valid UTF-8
    "not_json",  # not JSON (syntax, a lone surrogate, a control character in a string)
    "too_deep",  # arrays/objects nested deeper than MAX_DEPTH
    "number_too_long",  # a number of more than MAX_NUMBER_DIGITS digits
    "non_finite",  # NaN, Infinity, or a number beyond the float range
    "not_object",  # JSON, but not an object
    "invalid",  # does not fit the model: type, range, length, unknown or missing field
    "node_mismatch",  # the payload's node_id is not the topic's
    "bad_topic",  # the topic is not an edge→server topic of the contract
    "clock_ahead",  # `ts` too far ahead of the server's receive time
    "internal",  # the server failed on it (a bug): logged with its traceback
]
REJECT_REASONS: Final[tuple[str, ...]] = get_args(RejectReason)
#: The reasons `contract.payloads.decode_edge` may give.
DECODE_REASONS: Final[frozenset[str]] = frozenset(REJECT_REASONS[:9])

KiB: Final = 1024

#: Largest payload, in bytes, of each channel. Every payload that fits its model with
#: ASCII text fits its limit (tests/contract/test_limits.py builds the largest one).
MAX_PAYLOAD_BYTES: Final[dict[str, int]] = {
    "availability": 1 * KiB,
    "position": 2 * KiB,
    "lock": 4 * KiB,
    "health": 8 * KiB,
    "lane": 8 * KiB,
    "command/result": 8 * KiB,
    "command": 16 * KiB,
    "declared": 16 * KiB,
    "passage": 64 * KiB,
}
#: The largest of them: what the broker's `max_packet_size` must leave room for
#: (config/mosquitto/conf.d/bondwatch.conf).
LARGEST_PAYLOAD_BYTES: Final = max(MAX_PAYLOAD_BYTES.values())
#: Deepest nesting of arrays and objects (a passage needs 3: object, list, object).
MAX_DEPTH: Final = 8
#: Longest run of digits outside strings (a 64-bit `seq` has 19).
MAX_NUMBER_DIGITS: Final = 40

#: Every digit turned into `0`, every other byte into a space (`bytes.translate`): a run
#: of too many digits is then a substring search, in C.
_DIGIT_MAP = bytes(0x30 if c in b"0123456789" else 0x20 for c in range(256))
_LONG_RUN = b"0" * (MAX_NUMBER_DIGITS + 1)
#: Every byte but a bracket, deleted (`bytes.translate`).
_NOT_BRACKETS = bytes(c for c in range(256) if c not in b"[]{}")
#: An innermost pair of brackets.
_PAIR = re.compile(rb"\[\]|\{\}")


class LimitError(ValueError):
    """A payload refused before parsing; `reason` is one of `DECODE_REASONS`."""

    def __init__(self, reason: RejectReason, message: str) -> None:
        super().__init__(message)
        self.reason: RejectReason = reason


def check_raw(raw: bytes, max_bytes: int) -> None:
    """Refuse `raw` (raising `LimitError`) when it breaks a bound; cheap for what passes.

    Everything is done by bytes methods, in C (a position: 2.6 µs, pydantic 14 µs): nesting
    is only worked out exactly when there are more opening brackets than `MAX_DEPTH`,
    and the digits outside strings when there is a long run of digits at all."""
    if len(raw) > max_bytes:
        raise LimitError("too_large", f"{len(raw)} bytes, more than the {max_bytes} allowed")
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise LimitError("not_utf8", f"not UTF-8: {err.reason} at byte {err.start}") from None
    if raw.count(b"{") + raw.count(b"[") > MAX_DEPTH and _too_deep(raw):
        raise LimitError("too_deep", f"nested deeper than {MAX_DEPTH} arrays/objects")
    if _LONG_RUN in raw.translate(_DIGIT_MAP):
        outside = b" ".join(_outside_strings(raw))
        if _LONG_RUN in outside.translate(_DIGIT_MAP):
            raise LimitError("number_too_long", f"a number of more than {MAX_NUMBER_DIGITS} digits")


def _outside_strings(raw: bytes) -> list[bytes]:
    """The parts of `raw` outside JSON strings. Escaped backslashes and quotes go first,
    so that each quote left opens or closes a string."""
    plain = raw.replace(b"\\\\", b"").replace(b'\\"', b"")
    return plain.split(b'"')[::2]


def _too_deep(raw: bytes) -> bool:
    """Whether the brackets outside strings nest deeper than MAX_DEPTH: each round takes
    off the innermost pairs, one level; what is left after MAX_DEPTH rounds is deeper,
    unless it is unbalanced (then the parser says it is not JSON)."""
    brackets = b"".join(_outside_strings(raw)).translate(None, _NOT_BRACKETS)
    for _ in range(MAX_DEPTH):
        if not brackets:
            return False
        brackets = _PAIR.sub(b"", brackets)
    return _PAIR.search(brackets) is not None

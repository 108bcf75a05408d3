"""Lock authorisation tokens that a lock checks offline: seal, unseal and set_area.

A token is::

    version BYTE (2) ‖ action BYTE ‖ counter QWORD ‖ expiry DWORD ‖ tag (16 bytes)
    tag = HMAC-SHA256(secret, DOMAIN ‖ lock_id ‖ 0x00 ‖ trip_id ‖ 0x00 ‖ action ‖ counter
                      ‖ expiry ‖ area)[:16]

(big-endian; `action` is the command code of `profile.COMMAND_CODES`; `area` is the
12-byte packed area of a `set_area` token and empty otherwise). `secret` is a per-lock
key provisioned into the lock and held by the server only: the gateway passes tokens
through and cannot forge one. A token is bound to one lock, one trip, one action (and for
`set_area` one area) and one expiry; it is **single-use**: the lock keeps the highest
counter it has accepted (across its restarts) and refuses a token whose counter is not
above it (`token_reused`). The server draws counters from its clock
(`server.gates.lock_tokens`), so a newer token always carries a higher counter.

This is the one implementation of the token: the lock (`firmware_stubs.elock`) checks
it, the server makes it.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from datetime import datetime
from typing import Final, Literal, NamedTuple

from devices.elock import profile
from devices.elock.block import Area

DOMAIN: Final = b"BondWatch/lock-token/v2\x00"
TOKEN_VERSION: Final = 2
TAG_BYTES: Final = 16
_HEAD = struct.Struct(">BBQI")  # version, action, counter, expiry
TOKEN_BYTES: Final = _HEAD.size + TAG_BYTES
MAX_COUNTER: Final = 2**64 - 1

TokenAction = Literal["seal", "unseal", "set_area"]
TokenCheck = Literal["ok", "bad_token", "token_expired", "token_reused"]


class TokenVerdict(NamedTuple):
    """The lock's verdict on a token, and the token's counter (to keep when `ok`)."""

    result: TokenCheck
    counter: int


def _tag(
    secret: bytes,
    lock_id: str,
    trip_id: str,
    head: bytes,
    area: Area | None,
) -> bytes:
    message = (
        DOMAIN
        + lock_id.encode("utf-8")
        + b"\x00"
        + trip_id.encode("utf-8")
        + b"\x00"
        + head[1:]  # action ‖ counter ‖ expiry (the version is the domain's)
        + (area.pack() if area is not None else b"")
    )
    return hmac.new(secret, message, hashlib.sha256).digest()[:TAG_BYTES]


def make_token(
    secret: bytes,
    lock_id: str,
    action: TokenAction,
    trip_id: str,
    counter: int,
    expires_at: datetime,
    area: Area | None = None,
) -> bytes:
    """A token letting `lock_id` carry out `action` for `trip_id` once, until `expires_at`.

    `area` is required for `set_area` (the token then works for that area only) and
    refused for the other actions.
    """
    if expires_at.tzinfo is None:
        raise ValueError("expires_at must be timezone-aware")
    if (action == "set_area") != (area is not None):
        raise ValueError("a set_area token needs its area; other tokens take none")
    expiry = int(expires_at.timestamp())
    if not 0 <= expiry < 2**32:
        raise ValueError(f"expiry {expires_at} does not fit a DWORD of Unix seconds")
    if not 0 < counter <= MAX_COUNTER:
        raise ValueError(f"token counter {counter} is not in 1…2⁶⁴−1")
    head = _HEAD.pack(TOKEN_VERSION, profile.COMMAND_CODES[action], counter, expiry)
    return head + _tag(secret, lock_id, trip_id, head, area)


def check_token(
    secret: bytes,
    lock_id: str,
    action: TokenAction,
    trip_id: str,
    token: bytes,
    now: datetime,
    last_counter: int,
    area: Area | None = None,
) -> TokenVerdict:
    """The lock's check: `ok`, `bad_token` (wrong length, version, action, lock, trip,
    area or tag: a wrong password), `token_expired`, or `token_reused` (an authentic
    token whose counter is not above `last_counter`, the highest the lock has used)."""
    if len(token) != TOKEN_BYTES:
        return TokenVerdict("bad_token", 0)
    head = token[: _HEAD.size]
    version, action_code, counter, expiry = _HEAD.unpack(head)
    if version != TOKEN_VERSION or action_code != profile.COMMAND_CODES[action]:
        return TokenVerdict("bad_token", counter)
    if not hmac.compare_digest(token[_HEAD.size :], _tag(secret, lock_id, trip_id, head, area)):
        return TokenVerdict("bad_token", counter)
    if now.timestamp() > expiry:
        return TokenVerdict("token_expired", counter)
    if counter <= last_counter:
        return TokenVerdict("token_reused", counter)
    return TokenVerdict("ok", counter)

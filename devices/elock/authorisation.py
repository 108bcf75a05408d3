"""Unseal authorisation tokens that a lock can check offline.

A token is ``expiry (DWORD, Unix seconds, big-endian) ‖ tag (16 bytes)`` where
``tag = HMAC-SHA256(secret, DOMAIN ‖ lock_id ‖ 0x00 ‖ trip_id ‖ 0x00 ‖ expiry)[:16]``.
`secret` is a per-lock key provisioned into the lock and held by the server only;
the gateway passes the token through and cannot forge one. The lock needs only its
secret and its clock (GNSS time) to check it; a token is bound to one lock, one trip
and one expiry, so it cannot be replayed on another lock or another trip.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from datetime import datetime
from typing import Literal

DOMAIN = b"BondWatch/unseal/v1\x00"
TAG_BYTES = 16
TOKEN_BYTES = 4 + TAG_BYTES

TokenCheck = Literal["ok", "bad_token", "token_expired"]


def _tag(secret: bytes, lock_id: str, trip_id: str, expiry: int) -> bytes:
    message = (
        DOMAIN
        + lock_id.encode("utf-8")
        + b"\x00"
        + trip_id.encode("utf-8")
        + b"\x00"
        + struct.pack(">I", expiry)
    )
    return hmac.new(secret, message, hashlib.sha256).digest()[:TAG_BYTES]


def make_unseal_token(secret: bytes, lock_id: str, trip_id: str, expires_at: datetime) -> bytes:
    """A token allowing `lock_id` to unseal for `trip_id` until `expires_at` (aware)."""
    if expires_at.tzinfo is None:
        raise ValueError("expires_at must be timezone-aware")
    expiry = int(expires_at.timestamp())
    return struct.pack(">I", expiry) + _tag(secret, lock_id, trip_id, expiry)


def check_unseal_token(
    secret: bytes, lock_id: str, trip_id: str, token: bytes, now: datetime
) -> TokenCheck:
    """`ok`, `bad_token` (wrong length or tag: a wrong password) or `token_expired`."""
    if len(token) != TOKEN_BYTES:
        return "bad_token"
    (expiry,) = struct.unpack(">I", token[:4])
    if not hmac.compare_digest(token[4:], _tag(secret, lock_id, trip_id, expiry)):
        return "bad_token"
    if now.timestamp() > expiry:
        return "token_expired"
    return "ok"

"""Server side of the e-lock's unseal authorisation (docs/lock-profile.md, "The
authorisation token").

    token = expiry (DWORD, Unix seconds, big-endian) ‖ tag (16 bytes)
    tag   = HMAC-SHA256(secret, "BondWatch/unseal/v1\\0" ‖ lock_id ‖ 0x00 ‖ trip_id ‖ 0x00
                        ‖ expiry)[:16]

The server holds each lock's secret (the gateway never does) and sends the token,
base64, as `lock_token` of a signed `TruckCommand`. Written from the profile, not
imported from `devices/` (the server must not depend on device code); a test checks
that the lock's own check accepts it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import struct
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Final

import yaml

log = logging.getLogger(__name__)

DOMAIN: Final = b"BondWatch/unseal/v1\x00"
TAG_BYTES: Final = 16


class LockSecretsError(ValueError):
    """The lock secrets file is missing, unreadable or malformed."""


def unseal_token(secret: bytes, lock_id: str, trip_id: str, expires_at: datetime) -> bytes:
    """The 20-byte token letting `lock_id` unseal for `trip_id` until `expires_at`."""
    if expires_at.tzinfo is None:
        raise ValueError("expires_at must be timezone-aware")
    expiry = int(expires_at.timestamp())
    if not 0 <= expiry < 2**32:
        raise ValueError(f"expiry {expires_at} does not fit a DWORD of Unix seconds")
    packed = struct.pack(">I", expiry)
    message = (
        DOMAIN + lock_id.encode("utf-8") + b"\x00" + trip_id.encode("utf-8") + b"\x00" + packed
    )
    return packed + hmac.new(secret, message, hashlib.sha256).digest()[:TAG_BYTES]


def unseal_token_b64(secret: bytes, lock_id: str, trip_id: str, expires_at: datetime) -> str:
    """`unseal_token` as the `lock_token` field carries it (base64)."""
    return base64.b64encode(unseal_token(secret, lock_id, trip_id, expires_at)).decode("ascii")


class LockSecrets:
    """Per-lock secrets read from a YAML mapping `lock_id: secret` (UTF-8 text)."""

    def __init__(self, secrets: Mapping[str, bytes]) -> None:
        self._secrets = dict(secrets)

    @classmethod
    def load(cls, path: Path | None) -> LockSecrets:
        """Read `path`; None gives an empty set (no remote unseal)."""
        if path is None:
            return cls({})
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as err:
            raise LockSecretsError(f"{path}: cannot read lock secrets ({err})") from err
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise LockSecretsError(f"{path}: must map lock id → secret")
        problems = [
            f"lock {k!r}: the secret must be a text of 16 characters or more"
            for k, v in data.items()
            if not isinstance(v, str) or len(v.encode("utf-8")) < 16
        ]
        if problems:
            raise LockSecretsError(f"{path}: " + "; ".join(problems))
        log.info("lock secrets loaded from %s: %d locks", path, len(data))
        return cls({str(k): v.encode("utf-8") for k, v in data.items()})

    def get(self, lock_id: str) -> bytes | None:
        return self._secrets.get(lock_id)

    def __len__(self) -> int:
        return len(self._secrets)

"""Authentication codes handed to registering terminals (0x8100) and checked at 0x0102.

A code is derived from the gateway's secret and the terminal's phone number, so the
gateway stores nothing per device and a restarted (or replaced) gateway with the same
secret accepts the codes its devices already hold. A device leaves the registry, and its
code stops working, when its entry is removed; change the secret to revoke every code.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Final

from contract.cellular_registry import phone_key

_CONTEXT: Final = b"BondWatch/jt808-auth/v1\0"
#: Hex digits of a code (80 bits).
CODE_LENGTH: Final = 20


def auth_code(secret: bytes, phone: str) -> str:
    """The authentication code of the terminal with `phone`."""
    tag = hmac.new(secret, _CONTEXT + phone_key(phone).encode("ascii"), hashlib.sha256)
    return tag.hexdigest()[:CODE_LENGTH].upper()


def check_auth_code(secret: bytes, phone: str, code: str) -> bool:
    """True when `code` is the code of `phone` (compared in constant time)."""
    given = code.strip().upper().encode("utf-8")  # any text a terminal sends: compared as bytes
    return hmac.compare_digest(auth_code(secret, phone).encode("ascii"), given)

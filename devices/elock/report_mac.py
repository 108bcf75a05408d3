"""The MAC a BondWatch lock puts on each of its reports, and its check.

::

    mac = HMAC-SHA256(secret, DOMAIN ‖ lock_id ‖ 0x00 ‖ counter DWORD ‖ time DWORD
                      ‖ state BYTE ‖ event BYTE ‖ battery BYTE)[:16]

`counter` is the lock's report counter (one more for every report, kept across its
restarts), `time` the report's own time in Unix seconds (the 0x0200 time, whole
seconds), `state` and `event` the codes of `profile.STATE_CODES` / `EVENT_CODES`,
`battery` the percentage (0xFF when not reported). The key is the lock's per-lock
secret, the same as for its tokens (`devices.elock.authorisation`): the gateway between
the lock and the server holds no secret, so it can neither forge a report nor change
one; it can drop or replay reports, which the counter shows (a gap, or a counter that
goes back). The position is not covered: the gateway may fill it from its own receiver.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from datetime import datetime
from typing import Final

from devices.elock import profile

DOMAIN: Final = b"BondWatch/lock-report/v1\x00"
MAC_BYTES: Final = profile.REPORT_MAC_BYTES
MAX_COUNTER: Final = 2**32 - 1
NO_BATTERY: Final = 0xFF
_STATE_CODES: Final[dict[str, int]] = {k: v for k, v in profile.STATE_CODES.items()}
_EVENT_CODES: Final[dict[str, int]] = {k: v for k, v in profile.EVENT_CODES.items()}


def report_mac(
    secret: bytes,
    lock_id: str,
    counter: int,
    time: datetime,
    state: str,
    event: str,
    battery_pct: int | None,
) -> bytes:
    """The 16-byte MAC of one report. Raises ValueError for a value the wire cannot carry
    (an unknown state or event, a naive time, a counter or battery out of range)."""
    if time.tzinfo is None:
        raise ValueError("the report time must be timezone-aware")
    if not 0 <= counter <= MAX_COUNTER:
        raise ValueError(f"report counter {counter} does not fit a DWORD")
    if battery_pct is not None and not 0 <= battery_pct <= 100:
        raise ValueError(f"battery {battery_pct} % is not 0…100")
    state_code, event_code = _STATE_CODES.get(state), _EVENT_CODES.get(event)
    if state_code is None or event_code is None:
        raise ValueError(f"state {state!r} / event {event!r} is not of the lock profile")
    seconds = int(time.timestamp())
    if not 0 <= seconds < 2**32:
        raise ValueError(f"report time {time} does not fit a DWORD of Unix seconds")
    message = (
        DOMAIN
        + lock_id.encode("utf-8")
        + b"\x00"
        + struct.pack(
            ">IIBBB",
            counter,
            seconds,
            state_code,
            event_code,
            NO_BATTERY if battery_pct is None else battery_pct,
        )
    )
    return hmac.new(secret, message, hashlib.sha256).digest()[:MAC_BYTES]


def check_report_mac(
    secret: bytes,
    mac: bytes,
    lock_id: str,
    counter: int,
    time: datetime,
    state: str,
    event: str,
    battery_pct: int | None,
) -> bool:
    """True when `mac` is the lock's MAC of exactly these values (never raises)."""
    try:
        expected = report_mac(secret, lock_id, counter, time, state, event, battery_pct)
    except (ValueError, OverflowError):
        return False
    return hmac.compare_digest(mac, expected)

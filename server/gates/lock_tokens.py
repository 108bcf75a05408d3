"""Server side of the e-lock's tokens (docs/lock-profile.md, "The authorisation token").

The token itself is `devices.elock.authorisation` (one implementation, checked by the
lock). Here: the counters the server puts in them, and the base64 form a signed
`TruckCommand` carries as `lock_token`.

Counters come from the server's clock, in microseconds since the Unix epoch, strictly
increasing within a process: a later token always carries a higher counter, with
nothing to store. A lock keeps the highest counter it has used and refuses any token at
or under it, so each token works once, and a token made before a newer one was used is
dead. (A server clock set back would make its tokens refused as `token_reused` until it
catches up: keep the server on NTP.)
"""

from __future__ import annotations

import base64
import threading
import time
from datetime import datetime

from devices.elock.authorisation import TokenAction, make_token


class TokenCounter:
    """Strictly increasing token counters from the clock (thread-safe)."""

    def __init__(self) -> None:
        self._last = 0
        self._lock = threading.Lock()

    def next(self) -> int:
        with self._lock:
            self._last = max(self._last + 1, time.time_ns() // 1000)
            return self._last


def lock_token_b64(
    secret: bytes,
    lock_id: str,
    action: TokenAction,
    trip_id: str,
    counter: int,
    expires_at: datetime,
) -> str:
    """A single-use `action` token for `lock_id` and `trip_id`, as `lock_token` carries it."""
    token = make_token(secret, lock_id, action, trip_id, counter, expires_at)
    return base64.b64encode(token).decode("ascii")

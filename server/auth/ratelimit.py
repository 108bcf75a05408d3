"""Login rate limits: an account's lockout backoff (kept in the store, so every worker sees
it) and a per-client-address window (kept in this process)."""

from __future__ import annotations

import threading
from collections import deque
from datetime import datetime, timedelta


def lockout_for(failures: int, threshold: int, base_s: int, max_s: int) -> timedelta | None:
    """How long an account is locked after `failures` consecutive failed logins.

    None below the threshold; at the threshold `base_s`, doubling with each further failure,
    at most `max_s`.
    """
    if failures < threshold:
        return None
    extra = min(failures - threshold, 20)
    return timedelta(seconds=min(max_s, base_s * (2**extra)))


class ClientLimiter:
    """Failed logins per client address within a sliding window."""

    def __init__(self, max_failures: int, window_s: int) -> None:
        self.max_failures = max_failures
        self.window = timedelta(seconds=window_s)
        self._failures: dict[str, deque[datetime]] = {}
        self._lock = threading.Lock()

    def _trim(self, client: str, now: datetime) -> deque[datetime]:
        times = self._failures.setdefault(client, deque())
        while times and now - times[0] > self.window:
            times.popleft()
        return times

    def retry_after(self, client: str, now: datetime) -> float | None:
        """Seconds this client must wait before another try, or None."""
        with self._lock:
            times = self._trim(client, now)
            if len(times) < self.max_failures:
                if not times:
                    self._failures.pop(client, None)
                return None
            return max(1.0, (times[0] + self.window - now).total_seconds())

    def failed(self, client: str, now: datetime) -> None:
        with self._lock:
            self._trim(client, now).append(now)
            if len(self._failures) > 100_000:  # bound memory under a spray of addresses
                oldest = next(iter(self._failures))
                self._failures.pop(oldest, None)

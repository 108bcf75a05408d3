"""Log a recurring problem at most once per key and window, with how many were left out.

A hostile or broken peer can send thousands of bad messages a second; each is counted,
but the log says so once per (node, reason) per minute: "… (and 4211 more like it in the
last 60 s)". Used wherever outside input is refused (the agents' commands, the ingest).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable

#: The window of `LogThrottle` unless told otherwise.
DEFAULT_WINDOW_S = 60.0
#: Keys remembered at most; the oldest are forgotten first (a flood of keys stays bounded).
MAX_KEYS = 4096


class LogThrottle:
    """Decides whether a line for `key` may be logged now."""

    def __init__(
        self,
        window_s: float = DEFAULT_WINDOW_S,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = MAX_KEYS,
    ) -> None:
        self.window_s = window_s
        self._clock = clock
        self._max_keys = max_keys
        #: key → (when it was last logged, lines left out since)
        self._seen: dict[Hashable, tuple[float, int]] = {}

    def admit(self, key: Hashable) -> int | None:
        """None: stay silent (counted). Else log now; the number is how many lines of
        this key were left out since its last logged one."""
        now = self._clock()
        last = self._seen.get(key)
        if last is not None and now - last[0] < self.window_s:
            self._seen[key] = (last[0], last[1] + 1)
            return None
        self._seen.pop(key, None)
        if len(self._seen) >= self._max_keys:
            del self._seen[next(iter(self._seen))]
        self._seen[key] = (now, 0)
        return last[1] if last is not None else 0


def and_more(left_out: int, window_s: float) -> str:
    """The suffix of a throttled line: `""` or ` (and N more like it in the last W s)`."""
    return f" (and {left_out} more like it in the last {window_s:g} s)" if left_out else ""

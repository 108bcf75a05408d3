"""Debouncing of the loop detector's presence input (pure: the caller passes the time)."""

from __future__ import annotations


class PresenceDebouncer:
    """Reports a presence state once it has been read unchanged for `hold_s` seconds.

    The first sample is reported at once (the lane's state at start-up is news).
    A sample that flips back before `hold_s` has passed is ignored: a truck's gap
    between cab and trailer, or a bouncing contact, does not make two passages.
    """

    def __init__(self, hold_s: float) -> None:
        if hold_s < 0:
            raise ValueError(f"hold_s must be >= 0, not {hold_s}")
        self.hold_s = hold_s
        self.stable: bool | None = None
        self._candidate: bool | None = None
        self._since: float = 0.0

    def feed(self, sample: bool, now: float) -> bool | None:
        """Take one sample read at `now` (seconds, monotonic); return the new state or None."""
        if self.stable is None:
            self.stable = sample
            self._candidate = None
            return sample
        if sample == self.stable:
            self._candidate = None
            return None
        if self._candidate != sample:
            self._candidate = sample
            self._since = now
        if now - self._since >= self.hold_s:
            self.stable = sample
            self._candidate = None
            return sample
        return None

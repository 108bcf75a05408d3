"""Clocks of the simulated devices.

A GNSS stub may run its route faster than real time (`--time-scale`, as the demo does:
ten simulated seconds a wall second). A device beside it on the same truck, the e-lock,
must then write the same simulated time in its reports, or the server sees every lock
report minutes before the fixes around it, and judges it as late data.
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime, timedelta

#: The fastest simulated time the stubs allow (simulated seconds per wall second).
MAX_TIME_SCALE = 100.0


def rfc3339(text: str) -> datetime:
    """An RFC 3339 time for a command line (`Z` or an offset; none means UTC)."""
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"{text!r}: not an RFC 3339 time") from err
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


def time_scale(text: str) -> float:
    """A `--time-scale` value: simulated seconds per wall second, above 0."""
    try:
        value = float(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"{text!r}: not a number") from err
    if not 0 < value <= MAX_TIME_SCALE:
        raise argparse.ArgumentTypeError(f"{text!r}: must be above 0 and at most 100")
    return value


class ScaledClock:
    """Reads `start` at the wall instant `start_wall` (Unix seconds) and runs `scale`
    times as fast; with neither given, it is the wall clock."""

    def __init__(
        self, start: datetime | None = None, start_wall: float | None = None, scale: float = 1.0
    ) -> None:
        if not 0 < scale <= MAX_TIME_SCALE:
            raise ValueError(f"time scale {scale}: must be above 0 and at most 100")
        self.start_wall = time.time() if start_wall is None else start_wall
        self.start = (
            datetime.fromtimestamp(self.start_wall, UTC) if start is None else start
        ).astimezone(UTC)
        self.scale = scale

    def now(self) -> datetime:
        return self.start + timedelta(seconds=(time.time() - self.start_wall) * self.scale)

"""The simulated devices' clocks (`firmware_stubs.clock`)."""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime, timedelta

import pytest

from firmware_stubs.clock import ScaledClock, rfc3339, time_scale


def test_a_scaled_clock_reads_its_start_at_its_wall_instant_and_runs_faster() -> None:
    start = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
    wall = time.time() - 3.0  # it read `start` three seconds ago
    clock = ScaledClock(start, wall, scale=10.0)
    now = clock.now()
    assert timedelta(seconds=29.5) <= now - start <= timedelta(seconds=35)
    assert now.tzinfo is UTC


def test_without_a_start_it_is_the_wall_clock() -> None:
    clock = ScaledClock()
    assert abs(clock.now() - datetime.now(UTC)) < timedelta(seconds=1)


@pytest.mark.parametrize("scale", [0.0, -1.0, 101.0])
def test_a_time_scale_out_of_range_is_refused(scale: float) -> None:
    with pytest.raises(ValueError, match="at most 100"):
        ScaledClock(scale=scale)
    with pytest.raises(argparse.ArgumentTypeError, match="at most 100"):
        time_scale(str(scale))


def test_command_line_times() -> None:
    assert rfc3339("2026-11-23T08:00:00Z") == datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
    assert rfc3339("2026-11-23T16:00:00+08:00") == datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
    assert rfc3339("2026-11-23T08:00:00") == datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
    assert time_scale("10") == 10.0
    with pytest.raises(argparse.ArgumentTypeError, match="not an RFC 3339 time"):
        rfc3339("yesterday")
    with pytest.raises(argparse.ArgumentTypeError, match="not a number"):
        time_scale("fast")

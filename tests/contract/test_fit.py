"""`contract.fit`: what an agent leaves out of a device's message rather than have the
server refuse it whole — checked against the contract's own validation for any numbers a
device may say."""

from __future__ import annotations

import math
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from contract.fit import fit, within
from contract.payloads import LockReport, Position
from edge.truck.agent import LOCK_FIT, POSITION_FIT

ANY_NUMBER = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(2**40), max_value=2**40),
    st.sampled_from([-3.5, 300, 1e6, -99_999.0, 99.99, 0, 255, 256, 359.99, 360.0]),
)


@given(alt=ANY_NUMBER, speed=ANY_NUMBER, course=ANY_NUMBER, sats=ANY_NUMBER, hdop=ANY_NUMBER)
def test_a_fitted_position_is_valid_and_keeps_every_value_within_bounds(
    alt: Any, speed: Any, course: Any, sats: Any, hdop: Any
) -> None:
    payload = {
        "node_id": "TRK-1",
        "seq": 1,
        "ts": "2026-12-08T08:00:00Z",
        "fix": "3d",
        "lat": 31.2,
        "lon": 121.5,
        "alt_m": alt,
        "speed_kmh": speed,
        "course_deg": course,
        "sats": sats,
        "hdop": hdop,
    }
    fitted, dropped = fit(Position, payload, POSITION_FIT)
    Position.model_validate(fitted)  # the server takes it
    assert (fitted["lat"], fitted["lon"]) == (31.2, 121.5)  # the place is never lost
    for name in ("alt_m", "speed_kmh", "course_deg", "sats", "hdop"):
        kept = name in fitted
        assert kept == (name not in dropped)
        assert kept == within(Position, name, payload[name])


@given(lat=ANY_NUMBER, lon=ANY_NUMBER, battery=ANY_NUMBER)
def test_a_fitted_lock_report_is_valid_and_keeps_its_event(
    lat: Any, lon: Any, battery: Any
) -> None:
    payload = {
        "node_id": "TRK-1",
        "seq": 2,
        "ts": "2026-12-08T08:00:00Z",
        "lock_id": "EL-1",
        "state": "open",
        "event": "rope_cut",
        "lat": lat,
        "lon": lon,
        "battery_pct": battery,
    }
    fitted, dropped = fit(LockReport, payload, LOCK_FIT)
    report = LockReport.model_validate(fitted)
    assert report.event == "rope_cut"
    assert ("lat" in fitted) == ("lon" in fitted)  # a place is both numbers or none
    assert ("battery_pct" in dropped) == (not within(LockReport, "battery_pct", battery))


def test_the_bounds_are_the_contracts() -> None:
    assert within(Position, "hdop", 99.99) and not within(Position, "hdop", -0.01)
    assert within(Position, "course_deg", 359.9) and not within(Position, "course_deg", 360.0)
    assert within(LockReport, "lat", -90.0) and not within(LockReport, "lat", 95.5)
    assert not within(LockReport, "battery_pct", 255) and within(LockReport, "battery_pct", 0)
    assert not within(Position, "sats", True)  # a bool is not a count
    assert not within(Position, "alt_m", math.nan)
    assert not within(Position, "sats", 3.5) and within(Position, "sats", 3)  # a count
    assert within(Position, "hdop", 3)  # a whole number is a number

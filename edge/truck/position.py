"""A GNSS fix from `devices.gnss` as the contract's `position` payload (without seq).

Receiver-declared invalid positions: a receiver may send a position it itself calls
invalid (GGA quality 0, RMC status V, FAA mode N — typically a cold-start guess, or
the last position repeated after it lost lock). The decoder gives such an epoch as no
fix (`mode` 1, no position, `receiver_valid=False`; docs/gnss.md); `has_valid_fix`
also refuses any 2D/3D `GnssFix` flagged `receiver_valid=False`. Such a position is
not evidence of the route: the truck publishes the epoch as `fix: "none"` without
coordinates, altitude, speed or course, exactly like an epoch without fix. It is
published rather than dropped so that the server learns at once that the truck has
lost its fix (the reporting policy reports a fix loss and a recovery immediately) and
times `GNSS_LOST` from there.
"""

from __future__ import annotations

from typing import Any

from contract.ids import format_ts, utc_now
from devices.gnss.codec import GnssFix
from edge.truck.policy import Sample

FIX_NAMES = {1: "none", 2: "2d", 3: "3d"}
#: Speed of a receiver in m/s to km/h.
MPS_TO_KMH = 3.6


def has_valid_fix(fix: GnssFix) -> bool:
    """A 2D/3D fix with a position that the receiver itself calls valid."""
    return fix.mode >= 2 and fix.receiver_valid and fix.lat is not None and fix.lon is not None


def sample_of(fix: GnssFix, monotonic_s: float) -> Sample:
    valid = has_valid_fix(fix)
    return Sample(
        t=monotonic_s,
        lat=fix.lat if valid else None,
        lon=fix.lon if valid else None,
        course_deg=fix.course_deg if valid else None,
        speed_kmh=None if fix.speed_mps is None or not valid else fix.speed_mps * MPS_TO_KMH,
        has_fix=valid,
    )


def position_payload(node_id: str, fix: GnssFix) -> dict[str, Any]:
    valid = has_valid_fix(fix)
    payload: dict[str, Any] = {
        "node_id": node_id,
        "ts": format_ts(fix.time or utc_now()),
        "fix": FIX_NAMES.get(fix.mode, "none") if valid else "none",
        "systems": list(fix.systems),
        "replayed": False,
    }
    if valid:
        payload["lat"] = round(fix.lat, 7)  # type: ignore[arg-type]
        payload["lon"] = round(fix.lon, 7)  # type: ignore[arg-type]
        if fix.alt_m is not None:
            payload["alt_m"] = round(fix.alt_m, 1)
        if fix.speed_mps is not None:
            payload["speed_kmh"] = round(max(0.0, fix.speed_mps * MPS_TO_KMH), 2)
        if fix.course_deg is not None:
            payload["course_deg"] = round(fix.course_deg % 360.0, 1) % 360.0
    if fix.sats_used is not None:
        payload["sats"] = fix.sats_used
    if fix.hdop is not None:
        payload["hdop"] = round(min(fix.hdop, 99.99), 2)
    return payload

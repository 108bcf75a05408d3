"""A GNSS fix from `devices.gnss` as the contract's `position` payload (without seq)."""

from __future__ import annotations

from typing import Any

from contract.ids import format_ts, utc_now
from devices.gnss.codec import GnssFix
from edge.truck.policy import Sample

FIX_NAMES = {1: "none", 2: "2d", 3: "3d"}
#: Speed of a receiver in m/s to km/h.
MPS_TO_KMH = 3.6


def sample_of(fix: GnssFix, monotonic_s: float) -> Sample:
    return Sample(
        t=monotonic_s,
        lat=fix.lat,
        lon=fix.lon,
        course_deg=fix.course_deg,
        speed_kmh=None if fix.speed_mps is None else fix.speed_mps * MPS_TO_KMH,
        has_fix=fix.mode >= 2 and fix.lat is not None and fix.lon is not None,
    )


def position_payload(node_id: str, fix: GnssFix) -> dict[str, Any]:
    has_fix = fix.mode >= 2 and fix.lat is not None and fix.lon is not None
    payload: dict[str, Any] = {
        "node_id": node_id,
        "ts": format_ts(fix.time or utc_now()),
        "fix": FIX_NAMES.get(fix.mode, "none") if has_fix else "none",
        "systems": list(fix.systems),
        "replayed": False,
    }
    if has_fix:
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

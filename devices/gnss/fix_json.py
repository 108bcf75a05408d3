"""The JSON line form of a fix used by `python -m devices.gnss decode`."""

from __future__ import annotations

from typing import Any

from devices.gnss.codec import GnssFix


def fix_to_json(fix: GnssFix) -> dict[str, Any]:
    """`time` (RFC 3339 UTC, milliseconds), `lat`, `lon`, `alt_m`, `speed_mps`,
    `course_deg`, `mode`, plus `sats`, `hdop`, `systems` and `receiver_valid` (true
    exactly for a 2D/3D fix: an epoch the receiver declared invalid is `mode` 1)."""
    stamp = None
    if fix.time is not None:
        stamp = fix.time.strftime("%Y-%m-%dT%H:%M:%S.") + f"{fix.time.microsecond // 1000:03d}Z"
    return {
        "time": stamp,
        "lat": fix.lat,
        "lon": fix.lon,
        "alt_m": fix.alt_m,
        "speed_mps": fix.speed_mps,
        "course_deg": fix.course_deg,
        "mode": fix.mode,
        "sats": fix.sats_used,
        "hdop": fix.hdop,
        "systems": list(fix.systems),
        "receiver_valid": fix.receiver_valid,
    }

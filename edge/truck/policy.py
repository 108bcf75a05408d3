"""When a fix becomes a `position` message (pure).

A fix is reported when the interval has passed, when the truck moved or turned more
than configured, and at once when the fix is lost or recovered — never more often
than the minimum interval, except for those fix-state changes.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from devices.geodesy import great_circle_m


class ReportingPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    interval_s: float = Field(default=10.0, gt=0, description="report at least this often")
    min_interval_s: float = Field(
        default=1.0, ge=0, description="never report moves more often than this"
    )
    distance_m: float = Field(default=200.0, gt=0, description="report after moving this far")
    heading_deg: float = Field(
        default=30.0, gt=0, le=180, description="report after turning this much (when moving)"
    )
    heading_min_speed_kmh: float = Field(
        default=5.0, ge=0, description="below this speed, course changes are noise"
    )


@dataclass(frozen=True, slots=True)
class Sample:
    """What the policy needs of a fix: its time (s), position, course, speed and fix state."""

    t: float
    lat: float | None
    lon: float | None
    course_deg: float | None
    speed_kmh: float | None
    has_fix: bool


def heading_change(a: float, b: float) -> float:
    diff = abs(a - b) % 360.0
    return min(diff, 360.0 - diff)


def should_report(policy: ReportingPolicy, last: Sample | None, now: Sample) -> bool:
    if last is None or last.has_fix != now.has_fix:
        return True
    elapsed = now.t - last.t
    if elapsed >= policy.interval_s:
        return True
    if elapsed < policy.min_interval_s or not now.has_fix:
        return False
    if None not in (last.lat, last.lon, now.lat, now.lon):
        moved = great_circle_m(last.lat, last.lon, now.lat, now.lon)  # type: ignore[arg-type]
        if moved >= policy.distance_m:
            return True
    if (
        last.course_deg is not None
        and now.course_deg is not None
        and (now.speed_kmh or 0.0) >= policy.heading_min_speed_kmh
    ):
        return heading_change(last.course_deg, now.course_deg) >= policy.heading_deg
    return False

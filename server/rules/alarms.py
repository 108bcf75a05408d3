"""Alarm types, their default severities (docs/contract.md) and the effects rules emit."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Literal

AlarmType = Literal[
    "ROUTE_DEVIATION",
    "FORBIDDEN_ZONE",
    "UNPLANNED_STOP",
    "LOCK_OPENED",
    "LOCK_TAMPER",
    "LOCK_LOW_BATTERY",
    "LOCK_WRONG_PASSWORD",
    "GNSS_LOST",
    "DEVICE_OFFLINE",
    "DEVICE_CLOCK_AHEAD",
    "TRANSIT_OVERDUE",
    "OVERSPEED",
    "POSITION_IMPLAUSIBLE",
    "GATE_MISMATCH",
    "LOCK_REPORT_FORGED",
    "LOCK_REPORT_GAP",
]
Severity = Literal["critical", "major", "minor", "warning"]

#: Default severity of each alarm type, exactly as in docs/contract.md.
DEFAULT_SEVERITY: Final[dict[AlarmType, Severity]] = {
    "ROUTE_DEVIATION": "major",
    "FORBIDDEN_ZONE": "critical",
    "UNPLANNED_STOP": "minor",
    "LOCK_OPENED": "critical",
    "LOCK_TAMPER": "critical",
    "LOCK_LOW_BATTERY": "warning",
    "LOCK_WRONG_PASSWORD": "major",
    "GNSS_LOST": "minor",
    "DEVICE_OFFLINE": "major",
    "DEVICE_CLOCK_AHEAD": "major",
    "TRANSIT_OVERDUE": "major",
    "OVERSPEED": "minor",
    "POSITION_IMPLAUSIBLE": "major",
    "GATE_MISMATCH": "major",
    "LOCK_REPORT_FORGED": "critical",
    "LOCK_REPORT_GAP": "major",
}
ALARM_TYPES: Final[tuple[AlarmType, ...]] = tuple(DEFAULT_SEVERITY)

#: (lon, lat) of where an alarm happened.
LonLat = tuple[float, float]


@dataclass(frozen=True, slots=True)
class Raise:
    """Raise an alarm of `alarm_type`, or count a repeat when one of that type is active."""

    alarm_type: AlarmType
    severity: Severity
    at: datetime
    position: LonLat | None = None
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Clear:
    """The condition behind the active alarm of `alarm_type` has ended."""

    alarm_type: AlarmType
    at: datetime
    detail: dict[str, Any] = field(default_factory=dict)


Effect = Raise | Clear


def raise_(
    alarm_type: AlarmType,
    at: datetime,
    position: LonLat | None = None,
    **detail: Any,
) -> Raise:
    """A `Raise` with the type's default severity."""
    return Raise(alarm_type, DEFAULT_SEVERITY[alarm_type], at, position, detail)


def clear(alarm_type: AlarmType, at: datetime, **detail: Any) -> Clear:
    return Clear(alarm_type, at, detail)

"""What each report answers (the JSON of `/api/v1/reports/...`, documented in OpenAPI)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class WindowOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    from_: str = Field(alias="from", description="start of the window, inclusive (RFC 3339 UTC)")
    to: str = Field(description="end of the window, exclusive (RFC 3339 UTC)")
    tz: str = Field(description="IANA time zone the calendar days are counted in")


class Report(BaseModel):
    """What every report has: the window it covers."""

    window: WindowOut


class DurationStats(BaseModel):
    """Trip durations in minutes (rounded to 0.1 min)."""

    min: float
    p50: float = Field(description="median (linear between closest ranks)")
    p90: float = Field(description="90th percentile (linear between closest ranks)")
    max: float
    mean: float


class Bucket(BaseModel):
    from_min: float = Field(description="lower edge in minutes, inclusive")
    to_min: float = Field(description="upper edge in minutes, exclusive")
    count: int


class RouteTransit(BaseModel):
    route_id: str
    route_name: str | None = Field(description="the route's name in the geography, if known")
    trips: int = Field(description="trips of this route that arrived in the window")
    duration_min: DurationStats | None = Field(description="null when no trip arrived")
    histogram: list[Bucket] = Field(description="the report's buckets, the same for every route")


class TransitReport(Report):
    trips: int = Field(description="arrived trips in the window, all routes")
    bucket_min: float = Field(description="histogram bucket width in minutes")
    routes: list[RouteTransit]


class SeverityCounts(BaseModel):
    critical: int = 0
    major: int = 0
    minor: int = 0
    warning: int = 0


class AlarmTally(BaseModel):
    alarms: int = Field(default=0, description="alarms first raised in the window")
    occurrences: int = Field(
        default=0, description="the same alarms counting every repeat (sum of their `count`)"
    )
    by_severity: SeverityCounts = Field(default_factory=SeverityCounts)


class TypeTally(AlarmTally):
    type: str


class RouteTally(AlarmTally):
    route_id: str | None = Field(description="null: alarms on no declared trip")
    route_name: str | None


class DayTally(AlarmTally):
    day: str = Field(description="calendar day in the report's zone, YYYY-MM-DD")


class AlarmsByTypeReport(Report):
    total: AlarmTally
    types: list[TypeTally] = Field(description="most alarms first")


class AlarmsByRouteReport(Report):
    total: AlarmTally
    routes: list[RouteTally] = Field(description="every configured route, most alarms first")


class AlarmsByDayReport(Report):
    total: AlarmTally
    days: list[DayTally] = Field(description="every day of the window, oldest first")


class GateRelease(BaseModel):
    gate_id: str = Field(description="gate id (or the controller's node id if not configured)")
    gate_name: str | None
    passages: int
    auto_open: int = Field(
        description="opened by the server's own decision on the reading as the gate read it"
    )
    held: int = Field(description="held by the server's decision, not overridden")
    overridden: int = Field(description="decided by an officer's override")
    overridden_open: int
    overridden_hold: int
    corrected: int = Field(description="passages whose reading an officer corrected")
    corrected_open: int = Field(
        description="opened by the decision taken again after a correction (not overridden)"
    )
    appointment_open: int = Field(
        description="opened automatically on an appointment (part of auto_open)"
    )
    auto_release_rate: float | None = Field(
        description="auto_open / passages (0…1, 4 decimals); null without passages"
    )


class GateReleaseReport(Report):
    overall: GateRelease = Field(description="all gates together (gate_id `*`)")
    gates: list[GateRelease]

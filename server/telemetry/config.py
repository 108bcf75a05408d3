"""Configuration of the telemetry export (`telemetry:` in the server's file)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class TelemetrySettings(BaseModel):
    """Positions and alarm counts to a time-series database with the InfluxDB v2 write API."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["influxdb2"] = Field(
        default="influxdb2",
        description="the write API: InfluxDB v2 `/api/v2/write` (InfluxDB 2.x, InfluxDB 3, "
        "VictoriaMetrics and others that accept it)",
    )
    url: str = Field(description="base URL of the database, e.g. http://127.0.0.1:8086")
    org: str = Field(description="InfluxDB organisation (name or id)")
    bucket: str = Field(description="bucket the points are written to")
    token_env: str | None = Field(
        default=None,
        description="environment variable holding the API token (none: write unauthenticated)",
    )
    batch_max: int = Field(
        default=5000, ge=1, le=100_000, description="points per write request at most"
    )
    flush_interval_s: float = Field(
        default=1.0, gt=0, le=60, description="longest time a point waits before it is written"
    )
    queue_max: int = Field(
        default=200_000,
        ge=100,
        description="points held while the database is unreachable; the oldest are dropped "
        "beyond this",
    )
    alarm_interval_s: float = Field(
        default=60.0, gt=0, description="how often the active-alarm counts are written"
    )
    timeout_s: float = Field(default=10.0, gt=0, le=300, description="timeout of one write")

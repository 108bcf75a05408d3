"""Settings of the officers' console (`console:` in the server file).

The lead adds it to `ServerConfig` as
`console: ConsoleSettings = Field(default_factory=ConsoleSettings, description="the console")`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

from server.auth.zones import DEFAULT_ZONE, zone_problem

Severity = Literal["critical", "major", "minor", "warning"]


class TileSource(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["xyz"] = Field(default="xyz", description="an XYZ (slippy map) tile server")
    url: str = Field(
        description="tile URL template on the customs intranet, e.g. "
        "https://tiles.customs.example/osm/{z}/{x}/{y}.png (the browser fetches it directly)"
    )
    attribution: str = Field(
        default="", max_length=300, description="attribution text shown on the map"
    )
    max_zoom: int = Field(default=18, ge=1, le=22, description="highest zoom the server has")

    @field_validator("url")
    @classmethod
    def _template(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("use an absolute http(s) URL of the intranet tile server")
        for key in ("{z}", "{x}", "{y}"):
            if key not in url:
                raise ValueError(f"the URL template lacks {key}")
        return url

    @property
    def origin(self) -> str:
        parts = urlsplit(self.url.replace("{s}", "a"))
        return f"{parts.scheme}://{parts.netloc}"


class ConsoleSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tiles: TileSource | None = Field(
        default=None,
        description="base map tiles; without it the map shows land, coastline and sea from "
        "Natural Earth 1:10m, packaged with the console and clipped to the geography's region "
        "(no request ever leaves for the public internet)",
    )
    default_language: Literal["zh-CN", "en"] = Field(
        default="zh-CN", description="language of the console until the officer picks another"
    )
    time_zone: str = Field(
        default=DEFAULT_ZONE,
        description="IANA time zone the console shows times in for accounts that have not "
        "chosen their own (each officer may pick one in the console's header)",
    )
    poll_interval_ms: int = Field(
        default=1500,
        ge=500,
        le=60_000,
        description="how often a page re-reads the REST API while its live stream "
        "(WS /api/v1/stream) cannot be opened, e.g. behind a proxy without WebSocket support; "
        "with the stream up, pages do not poll",
    )
    resync_interval_s: int = Field(
        default=120,
        ge=0,
        le=86_400,
        description="safety net while the stream is up: each page re-reads its whole state "
        "over REST this often (0 = never), picking up what the stream does not carry "
        "(new trips, other server workers' events)",
    )
    reconnect_max_s: float = Field(
        default=30,
        ge=1,
        le=600,
        description="longest wait between two attempts to reopen a lost stream (the wait "
        "starts at 0.5 s and doubles)",
    )
    offline_after_s: int = Field(
        default=120, ge=10, le=86_400, description="a truck with no newer fix is shown offline"
    )
    stopped_below_kmh: float = Field(
        default=3.0, ge=0, le=30, description="a truck slower than this is shown stopped"
    )
    escalate_after_min: float = Field(
        default=5,
        gt=0,
        le=1440,
        description="the server escalates an alarm of `escalate_severities` still "
        "unacknowledged this long after it was first raised: it records `escalated_at`, a "
        "system `escalate` step in its history and the audit log, and the queue shows it "
        "escalated (badge and colour) until acknowledged",
    )
    escalate_severities: list[Severity] = Field(
        default_factory=lambda: list[Severity](["critical"]),
        description="severities that escalate (an empty list turns escalation off)",
    )
    escalation_check_s: float = Field(
        default=10,
        ge=0.2,
        le=3600,
        description="how often the server looks for alarms to escalate",
    )
    alarm_sound: bool = Field(
        default=True, description="play a tone when a new critical alarm reaches the queue"
    )
    vendor_dir: Path | None = Field(
        default=None,
        description="folder holding node_modules/leaflet and node_modules/leaflet.markercluster "
        "(default: server/console/vendor, filled by `make console-assets`)",
    )

    @field_validator("time_zone")
    @classmethod
    def _zone(cls, zone: str) -> str:
        problem = zone_problem(zone)
        if problem:
            raise ValueError(problem)
        return zone

"""Settings of the officers' console (`console:` in the server file).

The lead adds it to `ServerConfig` as
`console: ConsoleSettings = Field(default_factory=ConsoleSettings, description="the console")`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator


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
        description="base map tiles; without it the map shows the vector layers on a plain "
        "background (no request ever leaves for the public internet)",
    )
    default_language: Literal["zh-CN", "en"] = Field(
        default="zh-CN", description="language of the console until the officer picks another"
    )
    time_zone: str = Field(
        default="Asia/Shanghai", description="IANA time zone the console shows times in"
    )
    poll_interval_ms: int = Field(
        default=1500, ge=500, le=60_000, description="how often the live map asks for positions"
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
        description="a critical alarm still unacknowledged this long after it was raised is "
        "shown escalated in the alarm queue (badge and colour)",
    )
    alarm_sound: bool = Field(
        default=True, description="play a tone when a new critical alarm reaches the queue"
    )
    vendor_dir: Path | None = Field(
        default=None,
        description="folder holding node_modules/leaflet and node_modules/leaflet.markercluster "
        "(default: server/console/vendor, filled by `make console-assets`)",
    )

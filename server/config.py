"""The server's configuration file (YAML), validated with every error reported."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from contract.broker import BrokerSettings
from server.auth.config import AuthSettings
from server.console.config import ConsoleSettings
from server.gates.config import GatesSettings, TripSettings
from server.telemetry.config import TelemetrySettings


class HttpSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: str = Field(default="127.0.0.1", description="address the REST API and console bind to")
    port: int = Field(default=8080, ge=0, le=65535, description="HTTP port (0 = any free port)")


class StorageSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(
        default="sqlite:///var/bondwatch.db",
        description="SQLAlchemy URL: sqlite:///FILE (embedded) or "
        "postgresql+psycopg://USER@HOST/DB (production); a password comes from password_env",
    )
    password_env: str | None = Field(
        default=None, description="environment variable holding the database password"
    )

    @field_validator("url")
    @classmethod
    def _known_backend(cls, url: str) -> str:
        if not (url.startswith("sqlite:///") or url.startswith("postgresql+psycopg://")):
            raise ValueError("use sqlite:///FILE or postgresql+psycopg://USER@HOST:PORT/DB")
        return url


class GeographySettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    profiles: Path | None = Field(
        default=None,
        description="credit-class profiles YAML (thresholds per 海关企业信用 class); "
        "built-in defaults when absent — see docs/rules.md",
    )
    routes: list[Path] = Field(
        default_factory=list, description="route GeoJSON files (line, sites, gates), one per route"
    )
    zones: list[Path] = Field(
        default_factory=list, description="zone GeoJSON files (forbidden, stop, tunnel, urban)"
    )


class IngestSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    share_group: str | None = Field(
        default=None,
        description="MQTT shared-subscription group; set it when several workers share the load",
    )
    batch_max: int = Field(default=500, ge=1, le=100_000, description="rows per store write")
    passages: Literal["process", "connection", "shared"] = Field(
        default="process",
        description="where gate passages are taken and decided: `process` — a child "
        "process of their own with its own broker connections (client ids "
        "`<client_id>-passages` and `<client_id>-gate-commands`), so that a gate decision "
        "never waits behind the position stream; `connection` — a second connection in "
        "the server's process; `shared` — the same connection as everything else",
    )
    batch_wait_ms: int = Field(
        default=20, ge=0, le=5000, description="longest wait to fill a batch"
    )
    judge: Literal["process", "thread"] = Field(
        default="process",
        description="where the trip rules run: `process` — a child process of their own, "
        "fed each stored batch over a pipe, so that receiving and storing the position "
        "stream and judging it use two cores; `thread` — a worker thread of the server's "
        "process",
    )


class ServerConfig(BaseModel):
    """`bondwatch-server --config FILE`."""

    model_config = ConfigDict(extra="forbid")

    broker: BrokerSettings = Field(
        default_factory=lambda: BrokerSettings(client_id="bondwatch-server-1"),
        description="the MQTT broker the server subscribes to",
    )
    http: HttpSettings = Field(default_factory=HttpSettings, description="REST API and console")
    storage: StorageSettings = Field(default_factory=StorageSettings, description="the store")
    geography: GeographySettings = Field(
        default_factory=GeographySettings, description="routes and zones"
    )
    ingest: IngestSettings = Field(default_factory=IngestSettings, description="MQTT ingest")
    auth: AuthSettings = Field(default_factory=AuthSettings, description="accounts and sessions")
    console: ConsoleSettings = Field(
        default_factory=ConsoleSettings, description="the officers' console (map tiles)"
    )
    gates: GatesSettings = Field(
        default_factory=GatesSettings, description="gate decisions, commands, remote unseal"
    )
    trips: TripSettings = Field(default_factory=TripSettings, description="trip lifecycle")
    telemetry: TelemetrySettings | None = Field(
        default=None,
        description="positions and alarm counts to an InfluxDB v2 write API (off when absent)",
    )
    signing_key_file: Path | None = Field(
        default=None, description="Ed25519 private key (PEM) that signs gate and lock commands"
    )

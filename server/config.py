"""The server's configuration file (YAML), validated with every error reported."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from contract.broker import DEFAULT_SERVER_CLIENT_ID, BrokerSettings
from server.audit.config import AuditSettings
from server.auth.config import AuthSettings
from server.broker_accounts import BrokerAccounts
from server.console.config import ConsoleSettings
from server.evidence.config import EvidenceSettings
from server.gates.config import GatesSettings, TripSettings
from server.telemetry.config import TelemetrySettings


class OperationsListener(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: str = Field(default="127.0.0.1", description="address of the operations listener")
    port: int = Field(default=9108, ge=0, le=65535, description="its port (0 = any free port)")


class HttpSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: str = Field(default="127.0.0.1", description="address the REST API and console bind to")
    port: int = Field(default=8080, ge=0, le=65535, description="HTTP port (0 = any free port)")
    operations_listener: OperationsListener | None = Field(
        default=None,
        description="serve /metrics, /openapi.json, /docs and /redoc without accounts on "
        "this listener only (a management network, for Prometheus); by default they are "
        "on the main listener, to signed-in accounts only",
    )


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

    @model_validator(mode="before")
    @classmethod
    def _no_share_group(cls, data: object) -> object:
        if isinstance(data, dict) and "share_group" in data:
            raise ValueError(
                "share_group was removed: with MQTT shared subscriptions the broker hands "
                "a truck's messages to different workers, and each judged its own part of "
                "the trip; run one server (docs/telemetry-and-stream.md#one-server)"
            )
        return data

    batch_max: int = Field(default=500, ge=1, le=100_000, description="rows per store write")
    passages: Literal["process", "shared"] = Field(
        default="process",
        description="where gate passages are taken and decided: `process` — a child "
        "process of their own with its own broker connections (client ids "
        "`<client_id>-passages` and `<client_id>-gate-commands`), so that a gate decision "
        "never waits behind the position stream (docs/telemetry-and-stream.md); `shared` — "
        "the server's one connection, in its own process (a small site, one core)",
    )
    batch_wait_ms: int = Field(
        default=20, ge=0, le=5000, description="longest wait to fill a batch"
    )
    ack_interval_s: float = Field(
        default=1.0,
        ge=0.05,
        le=60.0,
        description="how often each node is told which of its seqs are durably stored "
        "(one `ack` per node per interval at most, docs/edge-outbox.md); the node keeps a "
        "message in its outbox until then",
    )
    ack_max_per_s: float = Field(
        default=2_000.0,
        ge=1.0,
        le=1_000_000.0,
        description="acknowledgements published a second at most: with more nodes "
        "sending, each waits its turn (longest-waiting first) and its acknowledgement "
        "covers more of its messages; a node then waits up to (nodes sending) / this "
        "for it — keep that below the nodes' `outbox.ack_timeout_s` (docs/edge-outbox.md)",
    )
    max_clock_ahead_s: float = Field(
        default=120.0,
        ge=0.0,
        le=86_400.0,
        description="a message whose `ts` is more than this far ahead of the server's receive "
        "time is refused (`clock_ahead`) and never stored: a device clock in the future "
        "would stay a truck's newest fix",
    )
    dead_letters_max: int = Field(
        default=10_000,
        ge=1,
        le=10_000_000,
        description="refused edge messages kept for admins (`GET /api/v1/dead-letters`); "
        "the oldest are dropped",
    )
    judge: Literal["process", "thread"] = Field(
        default="process",
        description="where the trip rules run: `process` — a child process of their own, "
        "fed each stored batch over a pipe, so that receiving and storing the position "
        "stream and judging it use two cores; `thread` — a worker thread of the server's "
        "process",
    )
    judge_workers: int = Field(
        default=1,
        ge=1,
        le=16,
        description="child processes sharing the trip rules, 1 to 16; more than 1 needs "
        "`judge: process` (refused with `judge: thread`): each "
        "vehicle's trips are judged by one of them, chosen from its id, so its messages "
        "are judged in fix-time order as on one; a killed child is replaced and judges "
        "its trips again from the store while the others go on. More than one pays on a "
        "machine with cores to spare (docs/telemetry-and-stream.md#several-judge-workers)",
    )

    judge_stall_s: float = Field(
        default=60.0,
        ge=10,
        le=3600,
        description="a judge worker that says nothing this long (it says every second "
        "that it is alive, while it waits for work and its timers run, or gets on with "
        "its work), 10 to 3600 s, hangs: it is "
        "killed and replaced, and the new one takes its trips up from the store; "
        "meanwhile an arrival of one of its trucks that it has not judged is held "
        "`judging` (docs/gates.md#judged-first)",
    )

    @model_validator(mode="after")
    def _workers_need_processes(self) -> IngestSettings:
        if self.judge == "thread" and self.judge_workers != 1:
            raise ValueError(
                f"judge_workers is {self.judge_workers} but judge is `thread`: several "
                "judge workers are child processes (judge: process)"
            )
        return self


class ServerConfig(BaseModel):
    """`bondwatch-server --config FILE`."""

    model_config = ConfigDict(extra="forbid")

    broker: BrokerSettings = Field(
        default_factory=lambda: BrokerSettings(client_id=DEFAULT_SERVER_CLIENT_ID),
        description="the MQTT broker the server subscribes to; its `username` is not "
        "used: each connection has its own account (`broker_accounts`)",
    )
    broker_accounts: BrokerAccounts = Field(
        default_factory=BrokerAccounts,
        description="each broker connection's account (default: user name = the "
        "connection's client id, password/certificate from `broker`), docs/broker-security.md",
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
    evidence: EvidenceSettings = Field(
        default_factory=EvidenceSettings,
        description="passage images uploaded by the gate controllers (docs/gates.md)",
    )
    telemetry: TelemetrySettings | None = Field(
        default=None,
        description="positions and alarm counts to an InfluxDB v2 write API (off when absent)",
    )
    signing_key_file: Path | None = Field(
        default=None, description="Ed25519 private key (PEM) that signs gate and lock commands"
    )
    audit: AuditSettings = Field(
        default_factory=AuditSettings, description="the audit log's signed checkpoints"
    )

    @model_validator(mode="after")
    def _an_account_per_connection(self) -> ServerConfig:
        if self.broker.username is not None:
            raise ValueError(
                "broker.username: each of the server's broker connections has an account "
                "of its own, named after its client id by default; set user names per "
                "connection in broker_accounts (docs/broker-security.md)"
            )
        return self

    @model_validator(mode="after")
    def _audit_key_is_its_own(self) -> ServerConfig:
        checkpoints = self.audit.checkpoints
        if checkpoints is not None and checkpoints.key_file == self.signing_key_file:
            raise ValueError(
                "audit.checkpoints.key_file is the command signing key (signing_key_file): "
                "give the audit log its own key (bondwatch-server audit keygen)"
            )
        return self

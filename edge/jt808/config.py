"""`bondwatch-jt808 --config FILE`: the gateway's configuration (YAML), every error reported."""

from __future__ import annotations

from pathlib import Path
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from contract.broker import BrokerSettings
from contract.ids import NodeId


class ListenerTls(BaseModel):
    """A TLS listener beside (or instead of) the plain TCP one."""

    model_config = ConfigDict(extra="forbid")

    port: int = Field(ge=0, le=65535, description="TLS port (0: any free port, for tests)")
    cert_file: Path = Field(description="the gateway's certificate chain (PEM)")
    key_file: Path = Field(description="its private key (PEM)")
    ca_file: Path | None = Field(
        default=None, description="CA of device certificates: given, devices must present one"
    )


class Listen(BaseModel):
    """Where devices connect."""

    model_config = ConfigDict(extra="forbid")

    host: str = Field(default="0.0.0.0", description="address to listen on")
    port: int | None = Field(
        default=7611, ge=0, le=65535, description="plain TCP port; null: TLS only"
    )
    tls: ListenerTls | None = Field(default=None, description="optional TLS listener")


class Limits(BaseModel):
    """What one connection may do before it is cut off."""

    model_config = ConfigDict(extra="forbid")

    max_connections: int = Field(default=10000, ge=1, description="device connections at once")
    max_frame_bytes: int = Field(
        default=4096, ge=64, le=65536, description="longest frame on the wire (escaped)"
    )
    frames_per_s: float = Field(
        default=20.0, gt=0, description="sustained frames per second per connection"
    )
    frame_burst: int = Field(
        default=200, ge=1, description="frames a connection may send at once (a backlog)"
    )
    bad_frames_max: int = Field(
        default=20, ge=1, description="bad frames in a row after which the connection is closed"
    )
    unauthenticated_max: int = Field(
        default=3,
        ge=1,
        description="messages before authentication answered 'failed' before closing",
    )
    auth_timeout_s: float = Field(
        default=30.0, gt=0, description="a new connection must authenticate within this"
    )
    idle_timeout_s: float = Field(
        default=180.0,
        gt=0,
        description="no whole frame for this long (3 heartbeats of 60 s) → closed as half-open",
    )
    write_timeout_s: float = Field(
        default=10.0, gt=0, description="a device that does not read its answers is closed"
    )


class Downlink(BaseModel):
    """Commands carried down to the locks."""

    model_config = ConfigDict(extra="forbid")

    ack_timeout_s: float = Field(default=5.0, gt=0, description="wait for the lock's answer")
    retries: int = Field(default=2, ge=0, description="further attempts, same serial number")


class StoreSettings(BaseModel):
    """The gateway's durable outbox (one SQLite file for every node)."""

    model_config = ConfigDict(extra="forbid")

    path: Path = Field(description="store file; on persistent storage, one per gateway")
    nonce_path: Path = Field(description="file remembering command nonces (replay protection)")
    max_bytes: int = Field(
        default=1024 * 1024 * 1024,
        ge=4096,
        description="payload bytes held; beyond, devices are answered 'failed' and keep "
        "their reports",
    )
    dedupe_window_s: float = Field(
        default=6 * 3600.0,
        gt=0,
        description="how long a stored report is recognised when its device sends it again",
    )
    commit_window_s: float = Field(
        default=0.005, ge=0, le=1, description="reports committed together (one fsync)"
    )
    max_inflight: int = Field(
        default=256, ge=1, le=5000, description="QoS 1 publishes awaiting PUBACK at once"
    )
    ack_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description="after a reconnect, messages the broker took earlier and the server "
        "has not acknowledged within this time are sent again",
    )
    replay_after_s: float = Field(
        default=30.0, gt=0, description="messages older than this when sent are flagged replayed"
    )


class MetricsListener(BaseModel):
    """Prometheus text on `GET /metrics` (counters of `edge/jt808/metrics.py`)."""

    model_config = ConfigDict(extra="forbid")

    host: str = Field(default="127.0.0.1", description="address (keep it on the site network)")
    port: int = Field(ge=0, le=65535, description="port (0: any free port, for tests)")


class GatewayConfig(BaseModel):
    """`bondwatch-jt808 --config FILE`."""

    model_config = ConfigDict(extra="forbid")

    gateway_id: NodeId = Field(
        description="the gateway's broker account and client id (role `jt808-gateway` in "
        "the broker's site registry)"
    )
    broker: BrokerSettings = Field(default_factory=BrokerSettings, description="MQTT broker")
    store: StoreSettings = Field(description="durable outbox and nonce files")
    server_public_key: Path = Field(
        description="the server's Ed25519 public key (PEM): only commands it signed are obeyed"
    )
    registry: Path = Field(
        description="the device registry (contract/cellular_registry.py): phone ↔ node and "
        "lock; the broker's ACL is generated from the same file"
    )
    auth_secret_file: Path = Field(
        description="file holding the secret the devices' authentication codes derive from"
    )
    listen: Listen = Field(default_factory=Listen, description="device listeners")
    limits: Limits = Field(default_factory=Limits, description="per-connection limits")
    downlink: Downlink = Field(default_factory=Downlink, description="lock commands")
    metrics: MetricsListener | None = Field(
        default=None, description="Prometheus metrics listener (absent: counters in the log only)"
    )

    @model_validator(mode="after")
    def _a_listener(self) -> Self:
        if self.listen.port is None and self.listen.tls is None:
            raise ValueError("listen: give a port, a tls listener, or both")
        return self

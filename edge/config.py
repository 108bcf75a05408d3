"""Agent configuration files (YAML): one model per agent kind, every error reported."""

from __future__ import annotations

from pathlib import Path
from typing import Self

from devices.gnss.driver import NmeaGnssConfig
from pydantic import BaseModel, ConfigDict, Field, model_validator

from contract.broker import BrokerSettings
from contract.ids import NodeId
from edge.truck.policy import ReportingPolicy


class AgentCommon(BaseModel):
    model_config = ConfigDict(extra="forbid")

    node_id: NodeId = Field(description="this gateway's node id; also its MQTT user name")
    broker: BrokerSettings = Field(default_factory=BrokerSettings, description="MQTT broker")
    state_dir: Path = Field(
        description="where the outbox, sequence numbers and seen nonces are kept (persistent disk)"
    )
    outbox_max_mb: float = Field(
        default=512.0, gt=0, description="outbox size limit; see docs/edge-outbox.md"
    )
    server_public_key: Path | None = Field(
        default=None,
        description="the server's Ed25519 public key (PEM); without it every command is refused",
    )


class TruckConfig(AgentCommon):
    """`bondwatch-edge truck --config FILE`."""

    gnss: NmeaGnssConfig = Field(description="the GNSS receiver driver")
    reporting: ReportingPolicy = Field(
        default_factory=ReportingPolicy, description="when fixes become position messages"
    )

    @model_validator(mode="after")
    def _own_ports(self) -> Self:
        return self

"""Agent configuration files (YAML): one model per agent kind, every error reported."""

from __future__ import annotations

from pathlib import Path
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from contract.broker import BrokerSettings
from contract.ids import NodeId
from devices.elock.driver import Jt808LockConfig
from devices.gnss.driver import NmeaGnssConfig
from edge.outbox_settings import OutboxSettings
from edge.truck.policy import ReportingPolicy


class AgentCommon(BaseModel):
    model_config = ConfigDict(extra="forbid")

    node_id: NodeId = Field(description="this gateway's node id; also its MQTT user name")
    broker: BrokerSettings = Field(default_factory=BrokerSettings, description="MQTT broker")
    outbox: OutboxSettings = Field(
        description="the durable outbox and nonce files (persistent disk) and link tuning"
    )
    server_public_key: Path = Field(
        description="the server's Ed25519 public key (PEM): only commands it signed are obeyed"
    )


class TruckConfig(AgentCommon):
    """`bondwatch-edge truck --config FILE`."""

    gnss: NmeaGnssConfig = Field(description="the GNSS receiver driver")
    lock: Jt808LockConfig | None = Field(
        default=None, description="the e-lock driver (absent: a GNSS-only gateway)"
    )
    reporting: ReportingPolicy = Field(
        default_factory=ReportingPolicy, description="when fixes become position messages"
    )

    @model_validator(mode="after")
    def _own_ports(self) -> Self:
        if self.lock is not None and self.lock.port == self.gnss.port:
            raise ValueError(
                f"lock {', '.join(self.lock.lock_ids)} on truck {self.node_id} uses "
                f"{self.lock.port}, which gnss already uses — give it its own port"
            )
        return self

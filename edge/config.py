"""Agent configuration files (YAML): one model per agent kind, every error reported."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from contract.broker import BrokerSettings
from contract.ids import NodeId, is_node_id
from devices.barrier.driver import ModbusBarrierConfig
from devices.camera.config import CameraConfig
from devices.elock.driver import Jt808LockConfig
from devices.gnss.driver import NmeaGnssConfig
from devices.ocr.reader import ReaderConfig
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


class GateConfig(AgentCommon):
    """`bondwatch-edge gate --config FILE` (one lane per agent)."""

    lane: NodeId = Field(description="this lane's id, as the server knows it (e.g. L1)")
    direction: Literal["in", "out"] = Field(
        description="in: trucks enter the bonded area through this lane; out: they leave"
    )
    barrier: ModbusBarrierConfig = Field(
        description="the barrier and loop detector (Modbus RTU relay/IO module)"
    )
    cameras: list[CameraConfig] = Field(
        min_length=1, max_length=4, description="the lane's cameras (1 to 4), each named uniquely"
    )
    ocr: ReaderConfig = Field(
        default_factory=ReaderConfig, description="container-number and plate reader"
    )
    images_dir: Path = Field(
        description="where captured frames are saved as JPEG (persistent disk); passages "
        "refer to them as gate://{node_id}/{path below this folder}"
    )
    decision_timeout_s: float = Field(
        default=10.0,
        gt=0,
        le=600,
        description="seconds to wait for the server's signed decision after a passage is "
        "published; without one the barrier stays down and the lane shows hold",
    )
    frames_per_camera: int = Field(
        default=1,
        ge=1,
        le=8,
        description="sharpest frames of each camera's burst that are read and saved "
        "(OCR takes seconds per frame on a gate PC)",
    )
    max_frame_age_s: float = Field(
        default=5.0,
        gt=0,
        le=60,
        description="frames older than this at the trigger are not used (a stalled stream "
        "must not show the previous truck)",
    )
    ocr_timeout_s: float = Field(
        default=60.0,
        gt=0,
        le=600,
        description="longest wait for the reading of one passage; after it the passage is "
        "published with what was read",
    )

    @model_validator(mode="after")
    def _unique_cameras(self) -> Self:
        seen: dict[str, str] = {}
        for camera in self.cameras:
            if camera.name in seen:
                raise ValueError(
                    f"cameras {seen[camera.name]} and {camera.url} on gate {self.node_id} are "
                    f"both named {camera.name!r} — give each camera its own name"
                )
            if not is_node_id(camera.name):
                raise ValueError(
                    f"camera name {camera.name!r} on gate {self.node_id} names image files: "
                    "use only letters, digits, '-' and '_'"
                )
            seen[camera.name] = camera.url
        return self

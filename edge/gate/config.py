"""The gate controller's configuration (`bondwatch-edge gate --config FILE`).

Kept apart from `edge.config` so that a truck gateway never imports OpenCV, OCR or
Modbus: a truck installs without them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from contract.ids import NodeId, is_node_id
from devices.barrier.driver import ModbusBarrierConfig
from devices.camera.config import CameraConfig
from devices.ocr.reader import ReaderConfig
from edge.config import AgentCommon


class EvidenceUpload(BaseModel):
    """Uploading each passage's images to the server (docs/gate-agent.md, *Evidence*)."""

    model_config = ConfigDict(extra="forbid")

    server_url: str = Field(
        pattern=r"^https?://[^/?#\s]+/?$",
        description="the server's base URL, e.g. https://bondwatch.customs.example (https "
        "outside a test bench)",
    )
    token_file: Path = Field(
        description="file whose first line is this gate's API token (a `device` account "
        "named after node_id; docs/gates.md) — readable by the agent only"
    )
    queue_path: Path = Field(
        description="the upload queue's database file (persistent disk, beside the outbox)"
    )
    ca_file: Path | None = Field(
        default=None, description="CA certificates to verify the server with (PEM); "
        "default: the system's"
    )  # fmt: skip
    max_items: int = Field(
        default=20_000,
        ge=10,
        le=10_000_000,
        description="images the queue holds; beyond it the oldest are dropped from the queue "
        "(their files stay in images_dir)",
    )
    retry_min_s: float = Field(
        default=2.0, gt=0, le=600, description="first wait after a failed upload"
    )
    retry_max_s: float = Field(
        default=300.0, gt=0, le=86400, description="longest wait between tries (doubling)"
    )
    timeout_s: float = Field(default=30.0, gt=0, le=600, description="one upload's time limit")
    give_up_after_s: float = Field(
        default=7 * 86400.0,
        gt=0,
        description="an image the server has not taken after this long leaves the queue",
    )

    @model_validator(mode="after")
    def _retry_order(self) -> Self:
        if self.retry_max_s < self.retry_min_s:
            raise ValueError(
                f"retry_max_s ({self.retry_max_s:g}) is shorter than retry_min_s "
                f"({self.retry_min_s:g}): raise retry_max_s"
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
    evidence: EvidenceUpload | None = Field(
        default=None,
        description="upload each passage's frames and crops to the server (null: images "
        "stay on the gate only)",
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

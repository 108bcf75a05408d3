"""The demo scenario file (`config/demo/scenario.yaml`)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from contract.ids import NodeId


class DemoTruck(BaseModel):
    model_config = ConfigDict(extra="forbid")

    node_id: NodeId = Field(description="the truck gateway's node id")
    plate: str = Field(description="licence plate")
    route_id: str = Field(description="the declared route")
    playback: Path = Field(description="GeoJSON line the simulated receiver drives along")
    speed_kmh: float = Field(default=60.0, gt=0, le=120, description="cruise speed")
    stops: str = Field(default="", description="stops as 'km:seconds,…'")
    declaration: dict[str, Any] = Field(
        description="declaration fields besides vehicle, plate, route"
    )
    elock: bool = Field(
        default=False,
        description="simulate the declaration's e-lock(s), sealed for this trip at departure, "
        "wired to the truck's gateway (the arrival gate wants a sealed lock)",
    )
    release: Literal["record", "inspect", "none"] = Field(
        default="none",
        description="what the declaration system sends for this trip at the start: the "
        "electronic release record, a request for inspection, or nothing",
    )


class DemoGate(BaseModel):
    """A gate controller at the trucks' destination gate: barrier, camera, gate agent."""

    model_config = ConfigDict(extra="forbid")

    node_id: NodeId = Field(
        description="the gate controller's node id: the gate_id of a gate in the routes"
    )
    lane: NodeId = Field(default="L1", description="the lane the trucks use")
    arrival_radius_m: float = Field(
        default=300.0,
        gt=0,
        le=5000,
        description="a truck reported this close to the gate drives into the lane",
    )
    frame_size: str = Field(
        default="960x540",
        description="camera frames WxH: small frames keep the OCR to about a second",
    )
    decision_timeout_s: float = Field(
        default=15.0, gt=0, le=600, description="the gate agent's wait for the decision"
    )
    drive_off_s: float = Field(
        default=4.0,
        ge=0,
        le=120,
        description="a released truck leaves this long after the barrier is fully open",
    )
    hold_s: float = Field(
        default=90.0,
        gt=0,
        le=3600,
        description="a truck not released stays this long in the lane (an officer may "
        "override in the console), then leaves for the inspection lane",
    )
    travel_s: float = Field(default=3.0, gt=0, le=30, description="barrier arm travel time")
    dwell_s: float = Field(
        default=240.0,
        gt=0,
        le=3600,
        description="wall-clock seconds a truck stands at the end of its line (the gate) "
        "before its next lap: long enough for a truck queued behind a held one to be "
        "read and decided (hold_s and a reading each)",
    )

    @field_validator("frame_size")
    @classmethod
    def _size(cls, value: str) -> str:
        if not re.fullmatch(r"\d{3,4}x\d{3,4}", value):
            raise ValueError(f"frame_size {value!r} is not WIDTHxHEIGHT, e.g. 960x540")
        return value


class Scenario(BaseModel):
    model_config = ConfigDict(extra="forbid")

    time_scale: float = Field(default=10.0, gt=0, le=100, description="simulated s per wall s")
    trucks: list[DemoTruck] = Field(min_length=1, description="trucks of the demo")
    gate: DemoGate | None = Field(
        default=None, description="a gate controller at the destination gate (none: no gate)"
    )

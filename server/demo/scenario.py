"""The demo scenario file (`config/demo/scenario.yaml`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

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


class Scenario(BaseModel):
    model_config = ConfigDict(extra="forbid")

    time_scale: float = Field(default=10.0, gt=0, le=100, description="simulated s per wall s")
    trucks: list[DemoTruck] = Field(min_length=1, description="trucks of the demo")

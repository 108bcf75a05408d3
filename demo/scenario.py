"""The demo scenario file (`config/demo/scenario.yaml`)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from contract.ids import NodeId
from devices.iso6346 import why_invalid


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
    cellular: bool = Field(
        default=False,
        description="its e-lock has its own GNSS and 4G modem and reports through the JT/T 808 "
        "gateway (config/demo/jt808-registry.yaml lists it): no GNSS stub, no truck agent",
    )
    release: Literal["record", "inspect", "none"] = Field(
        default="none",
        description="what the declaration system sends for this trip at the start: the "
        "electronic release record, a request for inspection, or nothing",
    )

    @model_validator(mode="after")
    def _cellular_needs_its_lock(self) -> Self:
        if self.cellular and not self.elock:
            raise ValueError(
                f"truck {self.node_id} is cellular: its e-lock is its device (elock: true)"
            )
        return self


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


class DemoAppointment(BaseModel):
    """A vehicle booked in advance (网上预约) at the demo's gate, by the declaration system."""

    model_config = ConfigDict(extra="forbid")

    appointment_id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$", description="its id")
    plate: str = Field(description="licence plate (the demo camera reads container doors only)")
    containers: list[str] = Field(default_factory=list, max_length=8, description="booked")
    direction: Literal["in", "out"] = Field(default="in", description="into or out of the zone")
    window_min: tuple[float, float] = Field(
        default=(-30.0, 60.0),
        description="the time window, in minutes from the demo's start: [from, to]",
    )
    purpose: str = Field(default="保税仓储 bonded storage", description="what it comes for")
    enterprise: dict[str, str] = Field(
        default_factory=lambda: {"code": "4401960009", "name": "白云示范物流"},
        description="the booking enterprise: code and name",
    )


class DemoVisitor(BaseModel):
    """A vehicle without a truck agent that drives through the demo's gate once: the
    camera shows its container door (an appointment vehicle, or any other)."""

    model_config = ConfigDict(extra="forbid")

    name: NodeId = Field(description="a name for the log and the outcome (unique)")
    door: str = Field(description="the container number the camera shows")
    arrive_after_s: float = Field(ge=0, le=86_400, description="wall seconds after the start")


class Scenario(BaseModel):
    model_config = ConfigDict(extra="forbid")

    time_scale: float = Field(default=10.0, gt=0, le=100, description="simulated s per wall s")
    trucks: list[DemoTruck] = Field(min_length=1, description="trucks of the demo")
    gate: DemoGate | None = Field(
        default=None, description="a gate controller at the destination gate (none: no gate)"
    )
    appointments: list[DemoAppointment] = Field(
        default_factory=list, description="vehicles booked at the gate (needs `gate`)"
    )
    visitors: list[DemoVisitor] = Field(
        default_factory=list,
        description="vehicles without a truck agent driving through the gate (needs `gate`)",
    )

    @model_validator(mode="after")
    def _gate_for_visitors(self) -> Self:
        if (self.appointments or self.visitors) and self.gate is None:
            raise ValueError("appointments and visitors need a `gate`")
        names = [v.name for v in self.visitors]
        if len(set(names)) != len(names):
            raise ValueError("each visitor needs a name of its own")
        for booking in self.appointments:
            for number in booking.containers:
                if (why := why_invalid(number)) is not None:
                    raise ValueError(f"appointment {booking.appointment_id}: {why}")
        return self

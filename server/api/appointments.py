"""Appointments REST endpoints: book (integration accounts and supervisors), list, get,
cancel (docs/contract.md, REST; docs/gates.md, "Appointments")."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated, Any, Self

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from contract.ids import Timestamp
from contract.version import API_PREFIX
from server.api.errors import ApiError
from server.api.gates import Actor, Comment, Gates
from server.api.params import Offset, since_utc
from server.gates.appointment_book import AppointmentQuery, NewAppointment
from server.gates.appointments import AppointmentStatus, Direction

router = APIRouter(prefix=API_PREFIX)

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


class AppointmentEnterprise(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=32)] = (
        Field(description="customs registration code")
    )
    name: Text


class AppointmentIn(BaseModel):
    """A vehicle booked to pass a gate in a time window (网上预约)."""

    model_config = ConfigDict(extra="forbid")

    appointment_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")] | None = Field(
        default=None, description="the booking system's own id; the server makes one without"
    )
    plate: Annotated[str, StringConstraints(strip_whitespace=True, min_length=2, max_length=16)]
    containers: list[Annotated[str, Field(pattern=r"^[A-Z]{4}\d{7}$")]] = Field(
        default_factory=list,
        max_length=8,
        description="the containers on the vehicle, each passing its ISO 6346 check digit; "
        "none for a vehicle without containers",
    )
    gate_id: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    direction: Direction = Field(description="in: entering the zone; out: leaving it")
    window_start: Timestamp
    window_end: Timestamp
    purpose: Text = Field(description="what the vehicle comes for")
    enterprise: AppointmentEnterprise

    @model_validator(mode="after")
    def _window(self) -> Self:
        if self.window_end <= self.window_start:
            raise ValueError("window_end must be after window_start")
        return self


class CancelIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    comment: Comment = Field(description="why: mandatory")


class AppointmentOut(BaseModel):
    appointment_id: str
    plate: str
    containers: list[str]
    gate_id: str
    direction: Direction
    window_start: Timestamp
    window_end: Timestamp
    purpose: str
    enterprise: dict[str, Any]
    status: AppointmentStatus = Field(
        description="active; used (it released a vehicle, once); cancelled"
    )
    expired: bool = Field(description="active, and its window has ended")
    created_by: str
    created_at: Timestamp
    cancelled_by: str | None
    cancelled_at: Timestamp | None
    cancel_comment: str | None
    used_by_passage: str | None
    used_at: Timestamp | None


@router.post("/appointments", status_code=201, response_model=AppointmentOut, tags=["appointments"])
async def create_appointment(body: AppointmentIn, gates: Gates, actor: Actor) -> dict[str, Any]:
    """Book a vehicle: a passage at the gate that matches it (plate and containers as read,
    inside the window, not used before) is released without a declaration."""
    new = NewAppointment(
        plate=body.plate,
        containers=tuple(body.containers),
        gate_id=body.gate_id,
        direction=body.direction,
        window_start=body.window_start,
        window_end=body.window_end,
        purpose=body.purpose,
        enterprise=body.enterprise.model_dump(),
        appointment_id=body.appointment_id,
    )
    return await asyncio.to_thread(gates.appointments.create, new, actor)


@router.get("/appointments", response_model=list[AppointmentOut], tags=["appointments"])
async def list_appointments(
    gates: Gates,
    gate: Annotated[str | None, Query(description="gate id")] = None,
    status: Annotated[AppointmentStatus | None, Query()] = None,
    plate: Annotated[str | None, Query(max_length=16)] = None,
    since: Annotated[
        datetime | None, Query(description="windows ending at or after (RFC 3339)")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Offset = 0,
) -> list[dict[str, Any]]:
    """Appointments, latest window first."""
    query = AppointmentQuery(gate, status, plate, since_utc(since), limit, offset)
    return await asyncio.to_thread(gates.appointments.find, query)


@router.get("/appointments/{appointment_id}", response_model=AppointmentOut, tags=["appointments"])
async def get_appointment(appointment_id: str, gates: Gates) -> dict[str, Any]:
    found = await asyncio.to_thread(gates.appointments.get, appointment_id)
    if found is None:
        raise ApiError(404, "not_found", f"no appointment {appointment_id!r}", "appointment_id")
    return found


@router.post(
    "/appointments/{appointment_id}/cancel",
    response_model=AppointmentOut,
    tags=["appointments"],
)
async def cancel_appointment(
    appointment_id: str, body: CancelIn, gates: Gates, actor: Actor
) -> dict[str, Any]:
    """Cancel an active appointment, with a mandatory comment; audited."""
    return await asyncio.to_thread(gates.appointments.cancel, appointment_id, body.comment, actor)

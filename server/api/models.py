"""Request and response models of the REST API (docs/contract.md, REST)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from contract.ids import NodeId, RecordId, Timestamp
from server.api.alarms import AlarmOut
from server.api.gates import PassageOut
from server.store.trip import Trip

Credit = Literal["advanced", "general_certified", "general", "dishonest"]


class Enterprise(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: Annotated[
        str, Field(min_length=1, max_length=32, description="customs registration code")
    ]
    name: Annotated[str, Field(min_length=1, max_length=200)]
    credit: Credit = Field(description="海关企业信用 class: 高级认证 / 一般认证 / 一般信用 / 失信")


class DeclarationIn(BaseModel):
    """A transit declaration, as the declaration system or an officer registers it."""

    model_config = ConfigDict(extra="forbid")

    declaration_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
    enterprise: Enterprise
    vehicle_id: NodeId = Field(description="node id of the truck's gateway")
    plate: Annotated[str, Field(min_length=2, max_length=16)]
    lock_ids: list[RecordId] = Field(min_length=1, max_length=8)
    containers: list[Annotated[str, Field(pattern=r"^[A-Z]{4}\d{7}$")]] = Field(max_length=8)
    origin_gate: RecordId
    destination_gate: RecordId
    route_id: RecordId
    time_limit_min: int = Field(ge=1, le=7 * 24 * 60)


class TrackPoint(BaseModel):
    seq: int
    ts: Timestamp
    lat: float
    lon: float
    speed_kmh: float | None
    course_deg: float | None
    fix: str
    hdop: float | None
    replayed: bool


class TripOut(BaseModel):
    trip_id: str
    declaration_id: str
    vehicle_id: str
    route_id: str
    status: str
    created_at: Timestamp
    started_at: Timestamp | None
    ended_at: Timestamp | None
    time_limit_min: int
    track: list[TrackPoint] | None = None


class TripDetailOut(TripOut):
    """One trip (`GET /trips/{id}`): the trip, its alarms and its gate passages."""

    alarms: list[AlarmOut] = Field(
        default_factory=list,
        description="every alarm of the trip, active or cleared, oldest first (by first_at)",
    )
    passages: list[PassageOut] = Field(
        default_factory=list,
        description="its gate passages (departure, arrival, repeats), oldest first, each "
        "with the decision, every reason and any officer override",
    )


class VehiclePosition(BaseModel):
    vehicle_id: str
    seq: int
    ts: Timestamp
    lat: float
    lon: float
    speed_kmh: float | None
    course_deg: float | None
    trip_id: str | None
    route_id: str | None


def trip_out(row: Trip, track: list[dict[str, Any]] | None = None) -> TripOut:
    points = None
    if track is not None:
        points = [
            TrackPoint.model_validate({k: p[k] for k in TrackPoint.model_fields}) for p in track
        ]
    return TripOut.model_validate(
        {**{k: getattr(row, k) for k in TripOut.model_fields if k != "track"}, "track": points}
    )


__all__ = ["DeclarationIn", "TripDetailOut", "TripOut", "VehiclePosition", "trip_out"]

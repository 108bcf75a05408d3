"""Gate REST endpoints: release records, passages with their decisions, officer
overrides, and the remote unseal (docs/contract.md, REST; docs/gates.md)."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated, Any, Literal, Self

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from contract.ids import RecordId, Timestamp
from contract.version import API_PREFIX
from server.api.actor import current_actor
from server.api.errors import ApiError
from server.api.evidence_models import Evidence, ImageOut, image_out
from server.api.params import Offset, since_utc
from server.gates.commands import SigningUnavailable
from server.gates.corrections import PassageCorrections
from server.gates.service import GateService
from server.gates.store import PassageQuery
from server.services import Services

router = APIRouter(prefix=API_PREFIX)

Comment = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]
Actor = Annotated[str, Depends(current_actor)]


def gate_service(request: Request) -> GateService:
    """The server's `GateService` (`Services.gates`)."""
    svc: Services = request.app.state.services
    return svc.gates


Gates = Annotated[GateService, Depends(gate_service)]


class ReleaseIn(BaseModel):
    """The electronic release record, or `{"inspect": true}`."""

    model_config = ConfigDict(extra="forbid")

    release_id: RecordId | None = Field(default=None, description="the release record's number")
    released_at: Timestamp | None = Field(default=None, description="when customs released it")
    inspect: bool = Field(default=False, description="true: the goods must be inspected")

    @model_validator(mode="after")
    def _one_kind(self) -> Self:
        if self.inspect and (self.release_id or self.released_at):
            raise ValueError("give either release_id and released_at, or inspect: true")
        if not self.inspect and (self.release_id is None or self.released_at is None):
            raise ValueError("a release record needs release_id and released_at")
        return self


class ReleaseOut(BaseModel):
    declaration_id: str
    release_id: str | None
    released_at: str | None
    inspect: bool
    recorded_at: str
    recorded_by: str
    trip_status: str | None = Field(
        default=None,
        description="the trip's status after the record: a trip held at its arrival gate "
        "becomes `released` when nothing holds it any more (no command is sent to the gate)",
    )
    hold_reasons: list[str] = Field(
        default_factory=list, description="what still holds a held trip, if anything"
    )


class OverrideIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: Literal["open", "hold"] = Field(description="the officer's decision")
    comment: Comment = Field(description="why: mandatory")


class CorrectIn(BaseModel):
    """An officer's reading of a held passage: the containers, the plate, or both."""

    model_config = ConfigDict(extra="forbid")

    containers: list[Annotated[str, StringConstraints(max_length=16)]] | None = Field(
        default=None,
        max_length=8,
        description="every container number on the truck (replaces the reading); each "
        "must pass its ISO 6346 check digit",
    )
    plate: Annotated[str, StringConstraints(min_length=1, max_length=16)] | None = Field(
        default=None, description="the plate (replaces the reading)"
    )
    comment: Comment = Field(description="why: mandatory")


class CorrectionOut(BaseModel):
    containers: list[dict[str, Any]] = Field(description="the readings decided on")
    plate: dict[str, Any] | None
    comment: str
    by: str
    at: Timestamp
    previous_decision: Literal["open", "hold"]
    previous_reasons: list[str]
    lane_state: str | None = Field(
        description="the lane's state when corrected: `hold`/`waiting` (the truck waits: a "
        "command was sent), `left` (another passage or none), null (never reported)"
    )
    command_id: str | None = Field(description="the command sent, if the truck waited")


class UnsealIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    comment: Comment = Field(description="why: mandatory")


class OverrideOut(BaseModel):
    action: Literal["open", "hold"]
    comment: str
    by: str
    at: Timestamp


class CommandResultOut(BaseModel):
    result: str | None = Field(description="done, refused, expired, bad_signature, failed")
    detail: str | None
    at: str | None


class PassageOut(BaseModel):
    passage_id: str
    gate_node: str = Field(description="node id of the gate controller")
    gate_id: str | None = Field(description="the geography's gate (null: unknown controller)")
    lane: str
    direction: Literal["in", "out"]
    ts: Timestamp
    containers: list[dict[str, Any]] = Field(description="as read (docs/contract.md passage)")
    plate: dict[str, Any] | None
    images: list[str]
    replayed: bool
    trip_id: str | None
    phase: Literal["departure", "arrival"] | None
    decision: Literal["open", "hold"] = Field(description="the server's decision")
    reasons: list[str] = Field(description="every reason for a hold")
    reason_codes: list[str]
    decided_at: Timestamp
    override: OverrideOut | None = Field(description="an officer's decision, if any")
    effective: Literal["open", "hold"] = Field(description="override if any, else decision")
    command_id: str | None = Field(description="the newest command sent for this passage")
    command_result: CommandResultOut | None
    appointment_id: str | None = Field(
        default=None, description="the appointment the passage was decided on, if any"
    )
    correction: CorrectionOut | None = Field(
        default=None,
        description="an officer's newest correction of the reading (the OCR reading stays "
        "in `containers` and `plate`); `decision` and `reasons` are then the decision taken "
        "again with it",
    )
    evidence: list[ImageOut] = Field(
        default_factory=list,
        description="the images the gate uploaded for this passage, frames and crops, with "
        "the readings drawn on each (`images` keeps the gate's own references); empty "
        "until they arrive — also `GET /passages/{id}/images`",
    )


class UnsealCommandOut(BaseModel):
    command_id: str
    lock_id: str
    expires_at: str


def passage_out(row: dict[str, Any], evidence: list[dict[str, Any]] | None = None) -> PassageOut:
    override = None
    if row["override_action"] is not None:
        override = OverrideOut(
            action=row["override_action"],
            comment=row["override_comment"],
            by=row["override_by"],
            at=row["override_at"],
        )
    fields = {k: row[k] for k in PassageOut.model_fields if k in row}
    fields |= {
        "override": override,
        "effective": row["override_action"] or row["decision"],
        "evidence": [image_out(e) for e in evidence or []],
    }
    return PassageOut.model_validate(fields)


@router.post(
    "/declarations/{declaration_id}/release",
    status_code=201,
    response_model=ReleaseOut,
    tags=["declarations"],
)
async def record_release(
    declaration_id: Annotated[str, Path(max_length=64)], body: ReleaseIn, gates: Gates, actor: Actor
) -> dict[str, Any]:
    """Record the electronic release record (or a request for inspection), audited. The
    arrival gate releases automatically only with a release record present. A trip
    already held at its arrival gate is judged again with the record: `released` when
    nothing holds it any more; the gate is not commanded (the truck passes when it
    presents itself again, or on an officer's override)."""
    return await asyncio.to_thread(
        gates.record_release,
        declaration_id,
        body.release_id,
        body.released_at,
        body.inspect,
        actor,
    )


@router.get("/passages", response_model=list[PassageOut], tags=["gates"])
async def list_passages(
    gates: Gates,
    evidence: Evidence,
    gate: Annotated[str | None, Query(description="gate id or gate controller node id")] = None,
    lane: Annotated[str | None, Query()] = None,
    decision: Annotated[Literal["open", "hold"] | None, Query()] = None,
    since: Annotated[datetime | None, Query(description="passages at or after (RFC 3339)")] = None,
    trip_id: Annotated[str | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Offset = 0,
) -> list[PassageOut]:
    """Gate passages, newest first, with the decision, every reason and the images."""
    query = PassageQuery(gate, lane, decision, since_utc(since), trip_id, limit, offset)
    rows = await asyncio.to_thread(gates.passages, query)
    images = await asyncio.to_thread(evidence.images_of, [r["passage_id"] for r in rows])
    return [passage_out(r, images[r["passage_id"]]) for r in rows]


@router.get("/passages/{passage_id}", response_model=PassageOut, tags=["gates"])
async def get_passage(passage_id: str, gates: Gates, evidence: Evidence) -> PassageOut:
    row = await asyncio.to_thread(gates.gates.get_passage, passage_id)
    if row is None:
        raise ApiError(404, "not_found", f"no passage {passage_id!r}", "passage_id")
    return passage_out(row, await asyncio.to_thread(evidence.images, passage_id))


@router.post("/passages/{passage_id}/override", response_model=PassageOut, tags=["gates"])
async def override_passage(
    passage_id: str, body: OverrideIn, gates: Gates, actor: Actor
) -> PassageOut:
    """An officer opens or holds the barrier instead of the server's decision: the
    comment is mandatory, the override audited, and a signed command sent to the gate."""
    try:
        row = await asyncio.to_thread(gates.override, passage_id, body.action, body.comment, actor)
    except SigningUnavailable as err:
        raise ApiError(503, "unavailable", str(err)) from err
    return passage_out(row)


@router.post("/passages/{passage_id}/correct", response_model=PassageOut, tags=["gates"])
async def correct_passage(
    passage_id: str, body: CorrectIn, gates: Gates, actor: Actor
) -> PassageOut:
    """An officer corrects a held passage's containers (each must pass its ISO 6346 check
    digit) or plate, with a mandatory comment; audited with before and after. The passage
    is decided again with it: while the truck still waits in the lane, a signed `open`
    (now clean) or `hold` (the remaining reasons) is sent to the gate."""
    try:
        row = await asyncio.to_thread(
            PassageCorrections(gates).correct,
            passage_id,
            body.containers,
            body.plate,
            body.comment,
            actor,
        )
    except SigningUnavailable as err:
        raise ApiError(503, "unavailable", str(err)) from err
    return passage_out(row)


@router.post("/trips/{trip_id}/unseal", response_model=list[UnsealCommandOut], tags=["trips"])
async def unseal_trip(trip_id: str, body: UnsealIn, gates: Gates, actor: Actor) -> list[Any]:
    """Authorise a remote unseal of the trip's locks: only while the truck's last fix is
    inside the destination site. One signed command per lock, with the lock's token."""
    try:
        return await asyncio.to_thread(gates.unseal, trip_id, actor, body.comment)
    except SigningUnavailable as err:
        raise ApiError(503, "unavailable", str(err)) from err

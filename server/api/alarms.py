"""Alarm REST endpoints: the queue, one alarm with its history, officer actions."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from contract.version import API_PREFIX
from server.alarms import SEVERITIES, STATUSES, AlarmQuery, AlarmService
from server.api.actor import current_actor
from server.api.errors import ApiError
from server.api.params import DB_INT_MAX, Offset
from server.auth.dependencies import auth_context

router = APIRouter(prefix=API_PREFIX, tags=["alarms"])

Comment = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]
Actor = Annotated[str, Depends(current_actor)]
AlarmId = Annotated[int, Path(ge=1, le=DB_INT_MAX, description="the alarm's id")]


class CommentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    comment: Comment = Field(description="why: required for every officer action")


class AssignIn(CommentIn):
    assignee: Annotated[str, StringConstraints(strip_whitespace=True, max_length=128)] | None = (
        Field(description="account the alarm is given to; null takes it back")
    )


class PointOut(BaseModel):
    type: Literal["Point"]
    coordinates: list[float] = Field(description="[lon, lat], WGS-84")


class CommentOut(BaseModel):
    at: str
    actor: str
    action: str = Field(description="the action the comment came with: ack, clear, …")
    text: str


class EventOut(BaseModel):
    id: int
    at: str
    actor: str = Field(description="account, or `system` for the rules")
    action: Literal["raise", "ack", "clear", "assign", "comment", "escalate"] = Field(
        description="`escalate`: the server escalated it (actor `system`, status unchanged)"
    )
    from_status: str | None
    to_status: str
    comment: str | None
    detail: str | None


class AlarmOut(BaseModel):
    id: int
    type: str
    severity: Literal["critical", "major", "minor", "warning"]
    trip_id: str
    vehicle_id: str
    first_at: str
    last_at: str
    count: int = Field(description="raises counted on this alarm (repeats included)")
    position: PointOut | None
    status: Literal["active_unack", "active_ack", "cleared_unack", "cleared_ack"]
    assignee: str | None
    detail: str
    cleared_at: str | None
    escalated_at: str | None = Field(
        default=None,
        description="when the server escalated it: still `active_unack` `escalate_after_min` "
        "minutes after `first_at` (console settings); null if never",
    )
    comments: list[CommentOut]
    history: list[EventOut] | None = Field(
        default=None, description="every transition (GET /alarms/{id} only)"
    )


def alarm_service(request: Request) -> AlarmService:
    """The server's one alarm service (`Services.alarms`)."""
    alarms: AlarmService = request.app.state.services.alarms
    return alarms


Alarms = Annotated[AlarmService, Depends(alarm_service)]


def _one_of(name: str, value: str | None, allowed: tuple[str, ...]) -> None:
    if value is not None and value not in allowed:
        raise ApiError(422, "invalid", f"{name} must be one of {', '.join(allowed)}", name)


@router.get("/alarms", response_model=list[AlarmOut], response_model_exclude_unset=True)
async def list_alarms(
    alarms: Alarms,
    response: Response,
    state: Annotated[
        Literal["active", "cleared", "all"], Query(description="active, cleared or all")
    ] = "all",
    status: Annotated[str | None, Query(description="one lifecycle status")] = None,
    type: Annotated[str | None, Query(description="alarm type, e.g. ROUTE_DEVIATION")] = None,
    severity: Annotated[str | None, Query(description="critical, major, minor, warning")] = None,
    trip_id: Annotated[str | None, Query()] = None,
    vehicle_id: Annotated[str | None, Query()] = None,
    assignee: Annotated[str | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Offset = 0,
) -> list[dict[str, Any]]:
    """Alarms by severity (critical first), then oldest first. `X-Total-Count` holds the
    number matching before paging."""
    _one_of("status", status, STATUSES)
    _one_of("severity", severity, SEVERITIES)
    query = AlarmQuery(state, status, type, severity, trip_id, vehicle_id, assignee, limit, offset)
    found, total = await asyncio.to_thread(alarms.find, query)
    response.headers["X-Total-Count"] = str(total)
    return [a.as_json() for a in found]


@router.get("/alarms/{alarm_id}", response_model=AlarmOut)
async def get_alarm(alarm_id: AlarmId, alarms: Alarms) -> dict[str, Any]:
    """One alarm with `history`: every transition with who, when, from/to and comment."""
    found = await asyncio.to_thread(alarms.get, alarm_id)
    if found is None:
        raise ApiError(404, "not_found", f"no alarm {alarm_id}", "alarm_id")
    return found.as_json()


@router.post("/alarms/{alarm_id}/ack", response_model=AlarmOut)
async def ack_alarm(
    alarm_id: AlarmId, body: CommentIn, alarms: Alarms, actor: Actor
) -> dict[str, Any]:
    """Acknowledge: active_unack → active_ack, cleared_unack → cleared_ack."""
    found = await asyncio.to_thread(alarms.ack, alarm_id, actor, body.comment)
    return found.as_json()


@router.post("/alarms/{alarm_id}/clear", response_model=AlarmOut)
async def clear_alarm(
    alarm_id: AlarmId, body: CommentIn, alarms: Alarms, actor: Actor
) -> dict[str, Any]:
    """Clear by an officer: active_unack → cleared_unack, active_ack → cleared_ack."""
    found = await asyncio.to_thread(alarms.officer_clear, alarm_id, actor, body.comment)
    return found.as_json()


@router.post("/alarms/{alarm_id}/assign", response_model=AlarmOut)
async def assign_alarm(
    alarm_id: AlarmId, body: AssignIn, alarms: Alarms, actor: Actor, request: Request
) -> dict[str, Any]:
    """Give the alarm to an enabled officer or supervisor account, or take it back with an
    empty assignee (refused once it is cleared and acknowledged)."""
    assignee = body.assignee or None
    if assignee is not None:
        account = await asyncio.to_thread(auth_context(request).accounts.get, assignee)
        if account is None or not account.takes_alarms:
            raise ApiError(
                422,
                "invalid",
                f"{assignee!r} is not an enabled officer or supervisor account",
                "assignee",
            )
    found = await asyncio.to_thread(alarms.assign, alarm_id, actor, assignee, body.comment)
    return found.as_json()


@router.post("/alarms/{alarm_id}/comment", response_model=AlarmOut)
async def comment_alarm(
    alarm_id: AlarmId, body: CommentIn, alarms: Alarms, actor: Actor
) -> dict[str, Any]:
    """Add a comment; the status stays."""
    found = await asyncio.to_thread(alarms.comment, alarm_id, actor, body.comment)
    return found.as_json()

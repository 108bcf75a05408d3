"""Read endpoints the console pages need beyond the REST API: one trip's whole story
(gate passages, alarms with history, officer actions from the audit log, lock events), the
newest release record of each declaration, and the accounts an alarm can be assigned to.
Included in the app with the guard, like every /api/v1 router."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel, Field
from sqlalchemy import func, select

from contract.ids import format_ts
from contract.payloads import LockReport
from contract.version import API_PREFIX
from server.alarms import AlarmQuery, AlarmService
from server.api.alarms import AlarmOut, alarm_service
from server.api.errors import ApiError
from server.api.gates import PassageOut, passage_out
from server.api.models import TripOut, trip_out
from server.audit import AuditQuery, list_entries
from server.auth.dependencies import auth_context
from server.evidence.service import images_of
from server.gates.store import GateStore, PassageQuery
from server.services import Services
from server.store import schema
from server.store.database import as_utc
from server.store.trip import Trip

log = logging.getLogger(__name__)

router = APIRouter(prefix=f"{API_PREFIX}/console", tags=["console"])

#: The most audit entries or lock events one timeline carries.
TIMELINE_LIMIT = 1000


class LockEventOut(BaseModel):
    at: str
    seq: int
    lock_id: str
    event: str = Field(description="sealed, unsealed, rope_cut, … (CONTRACT lock events)")
    state: str
    battery_pct: float | None
    lat: float | None
    lon: float | None


class AuditLine(BaseModel):
    seq: int
    at: str
    actor: str
    action: str
    object_type: str
    object_id: str
    details: dict[str, Any]


class TimelineOut(BaseModel):
    trip: TripOut
    alarms: list[AlarmOut] = Field(description="the trip's alarms, each with its history")
    audit: list[AuditLine] = Field(
        description="audit entries on the declaration, the trip, its alarms and its gate "
        "passages (officers' overrides, the server's decisions), oldest first"
    )
    locks: list[LockEventOut] = Field(description="lock reports during the trip")
    passages: list[PassageOut] = Field(
        description="the trip's gate passages, oldest first: time (`ts`), gate, lane, "
        "direction, the server's decision with every reason, and any officer override"
    )


class AssigneeOut(BaseModel):
    username: str
    display_name: str
    role: str


def _audit_for(svc: Services, object_type: str, object_id: str) -> list[dict[str, Any]]:
    query = AuditQuery(
        object_type=object_type, object_id=object_id, limit=TIMELINE_LIMIT, newest_first=False
    )
    entries, _ = list_entries(svc.store.engine, query)
    out = []
    for e in entries:
        line = e.as_json()
        out.append({k: line[k] for k in AuditLine.model_fields})
    return out


def _lock_events(svc: Services, trip: Trip) -> list[dict[str, Any]]:
    started: datetime | None = trip.started_at
    if started is None:
        return []
    ended: datetime | None = trip.ended_at
    after = (started - timedelta(microseconds=1), 0)
    upto = (ended, 2**62) if ended is not None else None
    events = []
    for _, message in svc.store.node_messages(trip.vehicle_id, ("lock",), after, upto):
        if not isinstance(message, LockReport):
            continue
        events.append(
            {
                "at": format_ts(message.ts),
                "seq": message.seq,
                "lock_id": message.lock_id,
                "event": str(message.event),
                "state": str(message.state),
                "battery_pct": message.battery_pct,
                "lat": message.lat,
                "lon": message.lon,
            }
        )
        if len(events) >= TIMELINE_LIMIT:
            break
    return events


def _timeline(svc: Services, alarms: AlarmService, trip_id: str) -> dict[str, Any] | None:
    trip = svc.store.get_trip(trip_id)
    if trip is None:
        return None
    track = None
    if trip.started_at is not None:
        track = svc.store.track(trip.vehicle_id, trip.started_at, trip.ended_at)
    found, _ = alarms.find(AlarmQuery(trip_id=trip_id, limit=1000))
    with_history = [alarms.get(a.id) for a in found]
    passages = GateStore(svc.store.engine).list_passages(
        PassageQuery(trip_id=trip_id, limit=TIMELINE_LIMIT)
    )
    passages.sort(key=lambda p: (p["ts"], p["decided_at"]))
    audit = _audit_for(svc, "declaration", trip.declaration_id)
    audit.extend(_audit_for(svc, "trip", trip_id))
    for alarm in found:
        audit.extend(_audit_for(svc, "alarm", str(alarm.id)))
    for passage in passages:
        audit.extend(_audit_for(svc, "passage", passage["passage_id"]))
    audit = sorted({line["seq"]: line for line in audit}.values(), key=lambda line: line["seq"])
    images = images_of(svc.store.engine, [p["passage_id"] for p in passages])
    return {
        "trip": trip_out(trip, track if track is not None else []),
        "alarms": [a.as_json() for a in with_history if a is not None],
        "audit": audit,
        "locks": _lock_events(svc, trip),
        "passages": [passage_out(p, images[p["passage_id"]]) for p in passages],
    }


@router.get("/trips/{trip_id}/timeline", response_model=TimelineOut)
async def trip_timeline(
    trip_id: Annotated[str, Path(max_length=64)], request: Request
) -> dict[str, Any]:
    """Everything that happened on one trip: its track, gate passages with their
    decisions, alarms with their history, the officers' actions (audit) and the lock
    events."""
    svc: Services = request.app.state.services
    found = await asyncio.to_thread(_timeline, svc, alarm_service(request), trip_id)
    if found is None:
        raise ApiError(404, "not_found", f"no trip {trip_id!r}", "trip_id")
    return found


@router.get("/assignees", response_model=list[AssigneeOut])
async def assignees(request: Request) -> list[dict[str, Any]]:
    """Enabled officer and supervisor accounts, for the alarm queue's assign dialog."""
    accounts = await asyncio.to_thread(auth_context(request).accounts.list_accounts)
    return [
        {"username": a.username, "display_name": a.display_name, "role": a.role}
        for a in accounts
        if a.takes_alarms
    ]


class ReleaseLine(BaseModel):
    declaration_id: str
    release_id: str | None
    released_at: str | None
    inspect: bool
    recorded_at: str
    recorded_by: str = Field(description="the account that recorded it")


def _latest_releases(svc: Services) -> list[dict[str, Any]]:
    r = schema.release_records.c
    newest = select(func.max(r.id)).group_by(r.declaration_id).scalar_subquery()
    query = select(schema.release_records).where(r.id.in_(newest)).order_by(r.declaration_id)
    with svc.store.engine.connect() as conn:
        rows = conn.execute(query).all()
    out = []
    for row in rows:
        m = row._mapping
        released, recorded = as_utc(m["released_at"]), as_utc(m["recorded_at"])
        assert recorded is not None
        out.append(
            {
                "declaration_id": m["declaration_id"],
                "release_id": m["release_id"],
                "released_at": format_ts(released) if released else None,
                "inspect": bool(m["inspect"]),
                "recorded_at": format_ts(recorded),
                "recorded_by": m["recorded_by"],
            }
        )
    return out


@router.get("/releases", response_model=list[ReleaseLine])
async def latest_releases(request: Request) -> list[dict[str, Any]]:
    """The newest release record (or request for inspection) of every declaration that has
    one, for the declarations page."""
    return await asyncio.to_thread(_latest_releases, request.app.state.services)


class AlarmVehicleOut(BaseModel):
    vehicle_id: str
    alarm_ids: list[int] = Field(description="its active alarms")
    severity: str = Field(description="the most severe of them")


@router.get("/alarm-vehicles", response_model=list[AlarmVehicleOut])
async def alarm_vehicles(request: Request) -> list[dict[str, Any]]:
    """Vehicles with active alarms, for the live map's colours: small even with thousands
    of alarms (the map follows changes on the stream afterwards)."""
    found = await asyncio.to_thread(alarm_service(request).active_by_vehicle)
    return [
        {"vehicle_id": vehicle, "alarm_ids": ids, "severity": severity}
        for vehicle, (ids, severity) in sorted(found.items())
    ]

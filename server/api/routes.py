"""REST endpoints of the foundation: declarations, trips, vehicles, geography, health."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import PlainTextResponse

from contract.ids import utc_now
from contract.version import API_PREFIX
from server.alarms import AlarmQuery
from server.api.actor import current_actor
from server.api.alarms import AlarmOut
from server.api.errors import ApiError
from server.api.evidence_models import evidence_service
from server.api.gates import PassageOut, passage_out
from server.api.models import DeclarationIn, TripDetailOut, TripOut, VehiclePosition, trip_out
from server.gates.store import GateStore, PassageQuery
from server.services import Services
from server.store.database import TRIP_STATUSES

router = APIRouter(prefix=API_PREFIX)
health_router = APIRouter()

#: Alarms and passages listed with one trip (a trip has a handful; a bound all the same).
TRIP_ITEMS_MAX = 1000


def services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found


@router.post("/declarations", status_code=201, response_model=TripOut, tags=["declarations"])
async def register_declaration(body: DeclarationIn, request: Request) -> TripOut:
    """Register a transit declaration; its trip starts in status `declared`."""
    svc = services(request)
    if body.route_id not in {r.route_id for r in svc.geography.routes}:
        raise ApiError(422, "invalid", f"unknown route {body.route_id!r}", "route_id")
    gate_ids = {g.gate_id for g in svc.geography.gates}
    for name in ("origin_gate", "destination_gate"):
        gate = getattr(body, name)
        if gate not in gate_ids:
            raise ApiError(422, "invalid", f"unknown gate {gate!r}", name)
    actor = await current_actor(request)
    row = await asyncio.to_thread(
        svc.store.create_declaration, body.model_dump(mode="json"), utc_now(), actor
    )
    if svc.declared is not None:
        svc.declared.wake()  # its truck's `declared` list (server.declared)
    return trip_out(row)


@router.get("/trips", response_model=list[TripOut], tags=["trips"])
async def list_trips(
    request: Request, status: Annotated[str | None, Query(description="filter by status")] = None
) -> list[TripOut]:
    if status is not None and status not in TRIP_STATUSES:
        raise ApiError(
            422, "invalid", f"status must be one of {', '.join(TRIP_STATUSES)}", "status"
        )
    rows = await asyncio.to_thread(services(request).store.list_trips, status)
    return [trip_out(r) for r in rows]


@router.get("/trips/{trip_id}", response_model=TripDetailOut, tags=["trips"])
async def get_trip(
    trip_id: str,
    request: Request,
    track: Annotated[int, Query(ge=0, le=1, description="1 to include the track")] = 0,
) -> TripDetailOut:
    """One trip with its alarms and gate passages (oldest first); `?track=1` adds its
    positions from departure to arrival, in fix-time order."""
    svc = services(request)
    store = svc.store
    evidence = evidence_service(request)
    row = await asyncio.to_thread(store.get_trip, trip_id)
    if row is None:
        raise ApiError(404, "not_found", f"no trip {trip_id!r}", "trip_id")
    points = None
    if track and row.started_at is not None:
        points = await asyncio.to_thread(store.track, row.vehicle_id, row.started_at, row.ended_at)
    elif track:
        points = []
    alarms = svc.alarms

    def history() -> tuple[list[AlarmOut], list[PassageOut]]:
        found, _ = alarms.find(AlarmQuery(trip_id=trip_id, limit=TRIP_ITEMS_MAX))
        found.sort(key=lambda a: (a.first_at, a.id))
        rows = GateStore(store.engine).list_passages(
            PassageQuery(trip_id=trip_id, limit=TRIP_ITEMS_MAX)
        )
        images = evidence.images_of([p["passage_id"] for p in rows])
        return (
            [AlarmOut.model_validate(a.as_json()) for a in found],
            [passage_out(p, images[p["passage_id"]]) for p in reversed(rows)],
        )

    trip_alarms, passages = await asyncio.to_thread(history)
    base = trip_out(row, points)
    return TripDetailOut(**base.model_dump(), alarms=trip_alarms, passages=passages)


@router.get("/vehicles/positions", response_model=list[VehiclePosition], tags=["trips"])
async def vehicle_positions(request: Request) -> list[VehiclePosition]:
    """The newest fix of every vehicle with its open trip, for the live map."""
    store = services(request).store

    def collect() -> list[VehiclePosition]:
        out = []
        trips = store.open_trips_by_vehicle()  # one query, not one per vehicle
        skew = timedelta(seconds=services(request).config.ingest.max_clock_ahead_s)
        for pos in store.latest_positions(not_after=utc_now() + skew):
            trip = trips.get(pos["node_id"])
            out.append(
                VehiclePosition(
                    vehicle_id=pos["node_id"],
                    seq=pos["seq"],
                    ts=pos["ts"],
                    lat=pos["lat"],
                    lon=pos["lon"],
                    speed_kmh=pos["speed_kmh"],
                    course_deg=pos["course_deg"],
                    trip_id=trip.trip_id if trip else None,
                    route_id=trip.route_id if trip else None,
                )
            )
        return out

    return await asyncio.to_thread(collect)


@router.get("/routes", tags=["geography"])
async def routes(request: Request) -> dict[str, Any]:
    """Route lines (with `corridor_m`), their corridor polygons, and sites, GeoJSON."""
    return services(request).geography.routes_geojson()


@router.get("/zones", tags=["geography"])
async def zones(request: Request) -> dict[str, Any]:
    """Forbidden, allowed-stop, tunnel and urban zones, GeoJSON."""
    return services(request).geography.zones_geojson()


@router.get("/gates", tags=["geography"])
async def gates(request: Request) -> dict[str, Any]:
    """Gates (points) with their site, GeoJSON."""
    return services(request).geography.gates_geojson()


@router.get("/healthz", tags=["operations"])
@health_router.get("/healthz", include_in_schema=False)
async def healthz(request: Request) -> dict[str, Any]:
    """Liveness, and whether the ingest is connected to the broker."""
    svc = services(request)
    return {"status": "ok", "broker_connected": svc.ingest_connected()}


@router.get("/metrics", response_class=PlainTextResponse, tags=["operations"])
async def metrics(request: Request) -> str:
    """Prometheus metrics (signed-in accounts; also at `/metrics`, server.api.operations)."""
    return services(request).metrics.render()

"""Supervisor reports: `GET /api/v1/reports/<name>` (JSON) and `/<name>.csv` or
`?format=csv` (CSV for Excel). Supervisors and admins only.

Every report takes `from`, `to` (RFC 3339 with an offset; default: the last 30 days) and
`tz` (IANA zone of the calendar days; default Asia/Shanghai). A malformed parameter is
refused with 400 and the contract's error shape, naming the parameter in `field`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Query, Request, Response

from contract.ids import utc_now
from contract.version import API_PREFIX
from server.api.errors import ApiError
from server.auth.dependencies import require
from server.auth.roles import Role
from server.reports import (
    ReportContext,
    ReportParamError,
    Window,
    alarms_by_day,
    alarms_by_route,
    alarms_by_type,
    gate_release,
    parse_bucket_min,
    parse_window,
    transit_times,
)
from server.reports import csv_export as csv
from server.reports.model import (
    AlarmsByDayReport,
    AlarmsByRouteReport,
    AlarmsByTypeReport,
    GateReleaseReport,
    Report,
    TransitReport,
)
from server.reports.window import parse_format
from server.services import Services

#: Who may read reports (a supervisor; an admin reads everything).
REPORT_ROLES: tuple[Role, ...] = ("supervisor", "admin")

router = APIRouter(
    prefix=f"{API_PREFIX}/reports",
    tags=["reports"],
    dependencies=[Depends(require(*REPORT_ROLES))],
)

R = TypeVar("R", bound=Report)

_CSV_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "the report as CSV (UTF-8 with a byte order mark, CRLF line ends)",
        "content": {"text/csv": {"schema": {"type": "string"}}},
    },
    400: {"description": "a malformed parameter: `{error: {code, message, field}}`"},
    403: {"description": "not a supervisor or admin"},
}
_JSON_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/csv": {"schema": {"type": "string"}}}},
    400: _CSV_RESPONSE[400],
    403: _CSV_RESPONSE[403],
}


def _bad(err: ReportParamError) -> ApiError:
    return ApiError(400, "invalid", err.message, err.field)


@dataclass(frozen=True, slots=True)
class ReportQuery:
    window: Window
    format: str


async def report_query(
    request: Request,
    from_: Annotated[
        str | None,
        Query(
            alias="from",
            description="start, inclusive, RFC 3339 with an offset "
            "(default: local midnight 29 days before the last day)",
        ),
    ] = None,
    to: Annotated[
        str | None, Query(description="end, exclusive, RFC 3339 with an offset (default: now)")
    ] = None,
    tz: Annotated[
        str | None, Query(description="IANA time zone of calendar days (default Asia/Shanghai)")
    ] = None,
    format: Annotated[
        str | None, Query(description="json (default) or csv; a .csv path means csv")
    ] = None,
) -> ReportQuery:
    default = "csv" if request.url.path.endswith(".csv") else "json"
    try:
        return ReportQuery(parse_window(from_, to, tz, utc_now()), parse_format(format, default))
    except ReportParamError as err:
        raise _bad(err) from err


Params = Annotated[ReportQuery, Depends(report_query)]


def _services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found


async def _build(
    request: Request,
    compute: Callable[..., R],
    window: Window,
    *extra: Any,
) -> R:
    svc = _services(request)
    context = ReportContext.of(svc.geography)
    try:
        return await asyncio.to_thread(compute, svc.store.engine, context, window, *extra)
    except ReportParamError as err:
        raise _bad(err) from err


def _answer(report: R, query: ReportQuery, name: str, to_csv: Callable[[R], str]) -> Any:
    if query.format != "csv":
        return report
    return Response(
        content=to_csv(report).encode("utf-8"),
        media_type=csv.MEDIA_TYPE,
        headers={
            "Content-Disposition": f'attachment; filename="{csv.filename(name, report.window)}"',
            "Cache-Control": "no-store",
        },
    )


@router.get("/transit-times", response_model=TransitReport, responses=_JSON_RESPONSES)
@router.get("/transit-times.csv", response_model=None, responses=_CSV_RESPONSE)
async def transit_times_report(
    request: Request,
    query: Params,
    bucket_min: Annotated[
        str | None,
        Query(description="histogram bucket width in minutes, 1…1440 (default: chosen round)"),
    ] = None,
) -> Any:
    """Transit times per route: count, min, median, 90th percentile, max and mean of the
    minutes from departure to arrival of the trips that arrived in the window, and a
    histogram with the same buckets for every route."""
    try:
        width = parse_bucket_min(bucket_min)
    except ReportParamError as err:
        raise _bad(err) from err
    report = await _build(request, transit_times, query.window, width)
    return _answer(report, query, "transit-times", csv.transit_csv)


@router.get("/alarms-by-type", response_model=AlarmsByTypeReport, responses=_JSON_RESPONSES)
@router.get("/alarms-by-type.csv", response_model=None, responses=_CSV_RESPONSE)
async def alarms_by_type_report(request: Request, query: Params) -> Any:
    """Alarms first raised in the window, per type, with their repeats and severities."""
    report = await _build(request, alarms_by_type, query.window)
    return _answer(report, query, "alarms-by-type", csv.alarms_by_type_csv)


@router.get("/alarms-by-route", response_model=AlarmsByRouteReport, responses=_JSON_RESPONSES)
@router.get("/alarms-by-route.csv", response_model=None, responses=_CSV_RESPONSE)
async def alarms_by_route_report(request: Request, query: Params) -> Any:
    """Alarms first raised in the window, per route of their trip (every route listed)."""
    report = await _build(request, alarms_by_route, query.window)
    return _answer(report, query, "alarms-by-route", csv.alarms_by_route_csv)


@router.get("/alarms-by-day", response_model=AlarmsByDayReport, responses=_JSON_RESPONSES)
@router.get("/alarms-by-day.csv", response_model=None, responses=_CSV_RESPONSE)
async def alarms_by_day_report(request: Request, query: Params) -> Any:
    """Alarms first raised in the window, per calendar day in `tz` (every day listed)."""
    report = await _build(request, alarms_by_day, query.window)
    return _answer(report, query, "alarms-by-day", csv.alarms_by_day_csv)


@router.get("/gate-release", response_model=GateReleaseReport, responses=_JSON_RESPONSES)
@router.get("/gate-release.csv", response_model=None, responses=_CSV_RESPONSE)
async def gate_release_report(request: Request, query: Params) -> Any:
    """Gate passages in the window per gate and overall: opened automatically, held, or
    overridden by an officer, and the auto-release rate (opened automatically / all)."""
    report = await _build(request, gate_release, query.window)
    return _answer(report, query, "gate-release", csv.gate_release_csv)

"""Build each report from the store's rows (one consistent snapshot per report)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final, Literal

from sqlalchemy import Engine

from server.audit import snapshot
from server.geo import Geography
from server.reports import queries
from server.reports.model import (
    AlarmsByDayReport,
    AlarmsByRouteReport,
    AlarmsByTypeReport,
    AlarmTally,
    Bucket,
    DayTally,
    DurationStats,
    GateRelease,
    GateReleaseReport,
    RouteTally,
    RouteTransit,
    SeverityCounts,
    TransitReport,
    TypeTally,
    WindowOut,
)
from server.reports.stats import MAX_BUCKETS, buckets_for, nice_width, summarise
from server.reports.window import ReportParamError, Window

REPORT_NAMES: Final = (
    "transit-times",
    "alarms-by-type",
    "alarms-by-route",
    "alarms-by-day",
    "gate-release",
)
#: `gate_id` of the all-gates line of the gate report.
ALL_GATES: Final = "*"


@dataclass(frozen=True, slots=True)
class ReportContext:
    """The configured names a report shows beside the ids."""

    route_names: Mapping[str, str] = field(default_factory=dict)
    gate_names: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, geography: Geography) -> ReportContext:
        return cls(
            route_names={r.route_id: r.name for r in geography.routes},
            gate_names={g.gate_id: g.name for g in geography.gates},
        )


def _window(window: Window) -> WindowOut:
    return WindowOut.model_validate(window.as_json())


def _minutes(value: float) -> float:
    return round(value, 1)


# ---- transit times ----------------------------------------------------------------------


def transit_times(
    engine: Engine, ctx: ReportContext, window: Window, bucket_min: int | None = None
) -> TransitReport:
    """Per route: how long trips took from departure to arrival, with a histogram whose
    buckets are the same for every route (chosen round, or `bucket_min` wide)."""
    with snapshot(engine) as conn:
        trips = queries.arrived_trips(conn, window.start, window.end)
    per_route: dict[str, list[float]] = {route_id: [] for route_id in ctx.route_names}
    for trip in trips:
        per_route.setdefault(trip.route_id, []).append(trip.minutes)
    everything = [m for minutes in per_route.values() for m in minutes]
    lo, hi = (min(everything), max(everything)) if everything else (0.0, 0.0)
    width = bucket_min if bucket_min is not None else nice_width(lo, hi)
    buckets = buckets_for(lo, hi, width)
    if buckets.n > MAX_BUCKETS:
        raise ReportParamError(
            "bucket_min",
            f"bucket_min={width} gives {buckets.n} buckets over {lo:.0f}–{hi:.0f} min; "
            f"at most {MAX_BUCKETS}: choose a wider bucket",
        )
    edges = buckets.edges() if everything else []
    routes = []
    for route_id in sorted(per_route):
        minutes = per_route[route_id]
        summary = summarise(minutes)
        stats = (
            DurationStats(
                min=_minutes(summary.min),
                p50=_minutes(summary.p50),
                p90=_minutes(summary.p90),
                max=_minutes(summary.max),
                mean=_minutes(summary.mean),
            )
            if summary is not None
            else None
        )
        counts = buckets.counts(minutes) if everything else []
        routes.append(
            RouteTransit(
                route_id=route_id,
                route_name=ctx.route_names.get(route_id),
                trips=len(minutes),
                duration_min=stats,
                histogram=[
                    Bucket(from_min=a, to_min=b, count=n)
                    for (a, b), n in zip(edges, counts, strict=True)
                ],
            )
        )
    return TransitReport(
        window=_window(window), trips=len(trips), bucket_min=float(width), routes=routes
    )


# ---- alarms -----------------------------------------------------------------------------


class _Tally:
    __slots__ = ("alarms", "occurrences", "severity")

    def __init__(self) -> None:
        self.alarms = 0
        self.occurrences = 0
        self.severity: dict[str, int] = defaultdict(int)

    def add(self, severity: str, alarms: int, occurrences: int) -> None:
        self.alarms += alarms
        self.occurrences += occurrences
        self.severity[severity] += alarms

    def out(self) -> AlarmTally:
        by_severity = SeverityCounts.model_validate(
            {k: v for k, v in self.severity.items() if k in SeverityCounts.model_fields}
        )
        return AlarmTally(alarms=self.alarms, occurrences=self.occurrences, by_severity=by_severity)

    def fields(self) -> dict[str, object]:
        return dict(self.out())


def _grouped(
    engine: Engine, window: Window, by: Literal["type", "route"]
) -> tuple[dict[str | None, _Tally], AlarmTally]:
    with snapshot(engine) as conn:
        groups = queries.alarm_groups(conn, window.start, window.end, by)
    tallies: dict[str | None, _Tally] = defaultdict(_Tally)
    total = _Tally()
    for g in groups:
        tallies[g.key].add(g.severity, g.alarms, g.occurrences)
        total.add(g.severity, g.alarms, g.occurrences)
    return tallies, total.out()


def alarms_by_type(engine: Engine, ctx: ReportContext, window: Window) -> AlarmsByTypeReport:
    """Alarms first raised in the window, per alarm type (most first)."""
    tallies, total = _grouped(engine, window, "type")
    ordered = sorted(tallies.items(), key=lambda kv: (-kv[1].alarms, kv[0] or ""))
    return AlarmsByTypeReport(
        window=_window(window),
        total=total,
        types=[TypeTally.model_validate({"type": k, **v.fields()}) for k, v in ordered],
    )


def alarms_by_route(engine: Engine, ctx: ReportContext, window: Window) -> AlarmsByRouteReport:
    """Alarms first raised in the window, per route of their trip; every configured route
    is listed (zero included), and alarms on no declared trip under route null."""
    tallies, total = _grouped(engine, window, "route")
    for route_id in ctx.route_names:
        tallies.setdefault(route_id, _Tally())
    ordered = sorted(tallies.items(), key=lambda kv: (-kv[1].alarms, kv[0] is None, kv[0] or ""))
    return AlarmsByRouteReport(
        window=_window(window),
        total=total,
        routes=[
            RouteTally.model_validate(
                {
                    "route_id": route_id,
                    "route_name": ctx.route_names.get(route_id) if route_id else None,
                    **tally.fields(),
                }
            )
            for route_id, tally in ordered
        ],
    )


def alarms_by_day(engine: Engine, ctx: ReportContext, window: Window) -> AlarmsByDayReport:
    """Alarms first raised in the window, per calendar day in the window's zone; every
    day of the window is listed, zero included."""
    days = window.days()
    with snapshot(engine) as conn:
        groups = queries.alarm_days(conn, window.bounds())
    tallies = {day: _Tally() for day in days}
    total = _Tally()
    for g in groups:
        tallies[days[int(g.key or 0)]].add(g.severity, g.alarms, g.occurrences)
        total.add(g.severity, g.alarms, g.occurrences)
    return AlarmsByDayReport(
        window=_window(window),
        total=total.out(),
        days=[
            DayTally.model_validate({"day": day.isoformat(), **tally.fields()})
            for day, tally in sorted(tallies.items())
        ],
    )


# ---- gates ------------------------------------------------------------------------------


def _release(gate_id: str, name: str | None, counts: queries.GateDecisions) -> GateRelease:
    overridden = counts.overridden_open + counts.overridden_hold
    rate = round(counts.auto_open / counts.passages, 4) if counts.passages else None
    return GateRelease(
        gate_id=gate_id,
        gate_name=name,
        passages=counts.passages,
        auto_open=counts.auto_open,
        held=counts.held,
        overridden=overridden,
        overridden_open=counts.overridden_open,
        overridden_hold=counts.overridden_hold,
        corrected=counts.corrected,
        corrected_open=counts.corrected_open,
        appointment_open=counts.appointment_open,
        auto_release_rate=rate,
    )


def gate_release(engine: Engine, ctx: ReportContext, window: Window) -> GateReleaseReport:
    """Per gate and overall: passages opened automatically, held, or overridden by an
    officer; the auto-release rate is the share opened automatically. Every configured
    gate is listed, zero included."""
    with snapshot(engine) as conn:
        found = {g.gate: g for g in queries.gate_decisions(conn, window.start, window.end)}
    for gate_id in ctx.gate_names:
        found.setdefault(gate_id, queries.GateDecisions(gate_id, 0, 0, 0, 0, 0, 0, 0, 0))
    total = queries.GateDecisions(
        ALL_GATES,
        *(sum(getattr(g, name) for g in found.values()) for name in _COUNT_FIELDS),
    )
    return GateReleaseReport(
        window=_window(window),
        overall=_release(ALL_GATES, None, total),
        gates=[_release(k, ctx.gate_names.get(k), found[k]) for k in sorted(found)],
    )


_COUNT_FIELDS: Final = (
    "passages",
    "auto_open",
    "held",
    "overridden_open",
    "overridden_hold",
    "corrected",
    "corrected_open",
    "appointment_open",
)

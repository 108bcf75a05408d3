"""The reports as CSV for Excel and other spreadsheets.

RFC 4180: comma-separated, CRLF line ends, fields with a comma, quote or line break in
double quotes (quotes doubled). The text starts with a UTF-8 byte order mark: Excel reads
a CSV file without one in the machine's ANSI code page (GBK on Chinese Windows), which
garbles the route and gate names. Text cells that a spreadsheet would run as a formula
(starting with = + - @, tab or CR) get a leading apostrophe (OWASP, "CSV Injection").
Column names are stable English identifiers; times of the window are in the file name.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from typing import Final

from server.reports.model import (
    AlarmsByDayReport,
    AlarmsByRouteReport,
    AlarmsByTypeReport,
    AlarmTally,
    GateRelease,
    GateReleaseReport,
    TransitReport,
    WindowOut,
)

BOM: Final = "\ufeff"
MEDIA_TYPE: Final = "text/csv; charset=utf-8"
SEVERITY_COLUMNS: Final = ("critical", "major", "minor", "warning")
_FORMULA_START: Final = ("=", "+", "-", "@", "\t", "\r")

Cell = str | int | float | None


def text_cell(value: str | None) -> str:
    """A text cell: empty for None; a leading apostrophe where a spreadsheet sees a formula."""
    if value is None:
        return ""
    return "'" + value if value.startswith(_FORMULA_START) else value


def _number(value: float | None, decimals: int) -> str:
    return "" if value is None else f"{value:.{decimals}f}"


def render(columns: Sequence[str], rows: Iterable[Sequence[Cell]]) -> str:
    """The CSV text, BOM first."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
    writer.writerow(columns)
    for row in rows:
        writer.writerow(["" if cell is None else cell for cell in row])
    return BOM + out.getvalue()


def filename(name: str, window: WindowOut) -> str:
    """`bondwatch-<report>-<from>-<to>.csv` with compact UTC times."""

    def compact(ts: str) -> str:
        return ts[:19].replace("-", "").replace(":", "") + "Z"

    return f"bondwatch-{name}-{compact(window.from_)}-{compact(window.to)}.csv"


def transit_csv(report: TransitReport) -> str:
    """One line per route; one column per histogram bucket `[from, to)` in minutes."""
    edges = [(b.from_min, b.to_min) for b in report.routes[0].histogram] if report.routes else []
    columns = [
        "route_id",
        "route_name",
        "trips",
        "min_minutes",
        "p50_minutes",
        "p90_minutes",
        "max_minutes",
        "mean_minutes",
        *(f"{a:g}-{b:g} min" for a, b in edges),
    ]
    rows: list[list[Cell]] = []
    for route in report.routes:
        d = route.duration_min
        stats = [None] * 5 if d is None else [d.min, d.p50, d.p90, d.max, d.mean]
        rows.append(
            [
                text_cell(route.route_id),
                text_cell(route.route_name),
                route.trips,
                *(_number(v, 1) for v in stats),
                *(b.count for b in route.histogram),
            ]
        )
    return render(columns, rows)


def _tally(t: AlarmTally) -> list[Cell]:
    s = t.by_severity
    return [t.alarms, t.occurrences, s.critical, s.major, s.minor, s.warning]


_TALLY_COLUMNS: Final = ("alarms", "occurrences", *SEVERITY_COLUMNS)


def alarms_by_type_csv(report: AlarmsByTypeReport) -> str:
    """One line per alarm type, then the total (`type` = `*`)."""
    rows = [[text_cell(t.type), *_tally(t)] for t in report.types]
    rows.append(["*", *_tally(report.total)])
    return render(("type", *_TALLY_COLUMNS), rows)


def alarms_by_route_csv(report: AlarmsByRouteReport) -> str:
    """One line per route (empty route: alarms on no declared trip), then the total."""
    rows = [[text_cell(r.route_id), text_cell(r.route_name), *_tally(r)] for r in report.routes]
    rows.append(["*", "", *_tally(report.total)])
    return render(("route_id", "route_name", *_TALLY_COLUMNS), rows)


def alarms_by_day_csv(report: AlarmsByDayReport) -> str:
    """One line per calendar day (YYYY-MM-DD in the report's zone), then the total."""
    rows = [[d.day, *_tally(d)] for d in report.days]
    rows.append(["*", *_tally(report.total)])
    return render(("day", *_TALLY_COLUMNS), rows)


def _gate_row(g: GateRelease) -> list[Cell]:
    return [
        text_cell(g.gate_id),
        text_cell(g.gate_name),
        g.passages,
        g.auto_open,
        g.held,
        g.overridden_open,
        g.overridden_hold,
        _number(g.auto_release_rate, 4),
        g.corrected,
        g.corrected_open,
        g.appointment_open,
    ]


def gate_release_csv(report: GateReleaseReport) -> str:
    """One line per gate, then all gates together (`gate_id` = `*`)."""
    columns = (
        "gate_id",
        "gate_name",
        "passages",
        "auto_open",
        "held",
        "overridden_open",
        "overridden_hold",
        "auto_release_rate",
        "corrected",
        "corrected_open",
        "appointment_open",
    )
    rows = [_gate_row(g) for g in report.gates]
    rows.append(_gate_row(report.overall))
    return render(columns, rows)

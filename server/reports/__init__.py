"""Supervisor reports over the store: transit times per route, alarms by type, route and
day, and the gate auto-release rate; each as JSON models and as CSV (server/api/reports.py).

`window` reads the time window and zone from query text; `queries` holds the SQL
(SQLAlchemy Core, SQLite and PostgreSQL alike); `stats` the pure arithmetic (percentiles,
histogram buckets); `compute` builds each report; `csv_export` writes them for Excel.
"""

from server.reports.compute import (
    REPORT_NAMES,
    ReportContext,
    alarms_by_day,
    alarms_by_route,
    alarms_by_type,
    gate_release,
    transit_times,
)
from server.reports.window import ReportParamError, Window, parse_bucket_min, parse_window

__all__ = [
    "REPORT_NAMES",
    "ReportContext",
    "ReportParamError",
    "Window",
    "alarms_by_day",
    "alarms_by_route",
    "alarms_by_type",
    "gate_release",
    "parse_bucket_min",
    "parse_window",
    "transit_times",
]

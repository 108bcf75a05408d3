"""A report's time window and time zone, read from query text.

`from` and `to` are RFC 3339 times with an offset (`2026-11-01T00:00:00+08:00`,
`2026-11-23T08:00:00Z`); the window is `[from, to)`. Without `to` it ends now; without
`from` it starts at local midnight 29 days before the last day of the window, so the
default is the last 30 calendar days (today included) in the report's zone. The zone
(`tz`, an IANA name, default Asia/Shanghai) decides which calendar day an event falls on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from contract.ids import format_ts, parse_ts

DEFAULT_ZONE = "Asia/Shanghai"
DEFAULT_DAYS = 30
#: The longest window a report covers (a leap year).
MAX_DAYS = 366
#: Histogram bucket widths a caller may ask for, in minutes.
BUCKET_MIN_RANGE = (1, 1440)

# RFC 3339 section 5.6 `date-time`: full-date "T" full-time, the offset mandatory.
_RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$"
)
_ZONE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+){0,2}$")
_ONE_US = timedelta(microseconds=1)


class ReportParamError(ValueError):
    """A query parameter of a report is malformed; `field` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True, slots=True)
class Window:
    """`[start, end)` in UTC, and the zone whose calendar days the report counts in."""

    start: datetime
    end: datetime
    zone: ZoneInfo

    @property
    def zone_name(self) -> str:
        return self.zone.key

    def day_of(self, moment: datetime) -> date:
        """The calendar day of `moment` (an aware time) in the window's zone."""
        return moment.astimezone(self.zone).date()

    def days(self) -> list[date]:
        """Every calendar day the window touches, in order."""
        first, last = self.day_of(self.start), self.day_of(self.end - _ONE_US)
        return [first + timedelta(days=i) for i in range((last - first).days + 1)]

    def bounds(self) -> list[datetime]:
        """`start`, the local midnight starting each further day, and `end` (UTC): day `i`
        of `days()` is `[bounds[i], bounds[i+1])`."""
        return [self.start, *(local_midnight(d, self.zone) for d in self.days()[1:]), self.end]

    def as_json(self) -> dict[str, str]:
        return {"from": format_ts(self.start), "to": format_ts(self.end), "tz": self.zone_name}


def parse_time(field: str, text: str) -> datetime:
    """An RFC 3339 time with an offset → aware UTC datetime (ReportParamError if not)."""
    value = text.strip()
    if not _RFC3339.match(value):
        raise ReportParamError(
            field,
            f"{field} must be an RFC 3339 time with an offset, e.g. 2026-11-01T00:00:00+08:00 "
            f"or 2026-11-23T08:00:00Z (got {text!r})",
        )
    try:
        return parse_ts(value[:10] + "T" + value[11:])
    except ValueError as err:
        raise ReportParamError(field, f"{field} is not a valid time: {err}") from err


def parse_zone(text: str) -> ZoneInfo:
    """An IANA zone name (`Asia/Shanghai`, `UTC`) → ZoneInfo (ReportParamError if unknown)."""
    name = text.strip()
    if not _ZONE_NAME.match(name):
        raise ReportParamError("tz", "tz must be an IANA time zone name such as Asia/Shanghai")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as err:
        raise ReportParamError(
            "tz", f"unknown time zone {name!r} (use an IANA name such as Asia/Shanghai)"
        ) from err


def local_midnight(day: date, zone: ZoneInfo) -> datetime:
    """The first moment of `day` in `zone`, in UTC."""
    return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)


def parse_window(
    from_text: str | None, to_text: str | None, tz_text: str | None, now: datetime
) -> Window:
    """The window the query asks for (defaults: see the module's description)."""
    zone = parse_zone(tz_text if tz_text else DEFAULT_ZONE)
    end = parse_time("to", to_text) if to_text else now.astimezone(UTC)
    if from_text:
        start = parse_time("from", from_text)
    else:
        last_day = (end - _ONE_US).astimezone(zone).date()
        start = local_midnight(last_day - timedelta(days=DEFAULT_DAYS - 1), zone)
    if start >= end:
        raise ReportParamError("from", "from must be earlier than to")
    if end - start > timedelta(days=MAX_DAYS):
        raise ReportParamError("from", f"a report covers at most {MAX_DAYS} days")
    return Window(start, end, zone)


def parse_bucket_min(text: str | None) -> int | None:
    """The histogram bucket width in whole minutes, or None to choose one."""
    if text is None or not text.strip():
        return None
    low, high = BUCKET_MIN_RANGE
    value = text.strip()
    if not value.isdigit() or not low <= int(value) <= high:
        raise ReportParamError(
            "bucket_min", f"bucket_min must be a whole number of minutes from {low} to {high}"
        )
    return int(value)


def parse_format(text: str | None, default: str = "json") -> str:
    """`json` or `csv`."""
    value = (text or default).strip().lower()
    if value not in ("json", "csv"):
        raise ReportParamError("format", "format must be json or csv")
    return value

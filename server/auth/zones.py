"""The officers' own time zones: IANA names the server's time zone database knows."""

from __future__ import annotations

from functools import cache
from zoneinfo import available_timezones

#: The zone of an account that has not chosen one and of a console configured without one.
DEFAULT_ZONE = "Asia/Shanghai"


@cache
def known_zones() -> frozenset[str]:
    """IANA zone names of the system's (or the tzdata package's) database, plus UTC."""
    return frozenset(available_timezones()) | {"UTC"}


def zone_problem(name: str) -> str | None:
    """Why `name` cannot be an account's time zone, or None when it can."""
    if name not in known_zones():
        return f"{name[:64]!r} is not an IANA time zone name such as Asia/Shanghai or UTC"
    return None

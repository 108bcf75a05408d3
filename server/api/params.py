"""Request parameters shared by the lists: bounds of numbers (what the store's integer
columns can hold) and times.

SQLite and PostgreSQL keep ids and offsets in signed 64-bit integers; a larger number in
a path or query must be refused as invalid (422), not reach the driver (which raises).
A time in a query is an instant: it must name its offset, and it is compared in UTC (the
store keeps UTC; SQLite would compare `…+08:00`'s wall-clock fields as if they were).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Final

from fastapi import Query

from server.api.errors import ApiError

#: The largest value of a signed 64-bit (BIGINT) column.
DB_INT_MAX: Final = 2**63 - 1

#: `offset` of a paged list.
Offset = Annotated[int, Query(ge=0, le=DB_INT_MAX, description="rows to skip")]


def since_utc(since: datetime | None, name: str = "since") -> datetime | None:
    """A query's time as UTC; 422 when it names no offset."""
    if since is None:
        return None
    if since.tzinfo is None:
        raise ApiError(422, "invalid", f"{name} needs a time zone (append Z for UTC)", name)
    return since.astimezone(UTC)

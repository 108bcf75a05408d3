"""Identifiers and timestamps shared by every payload.

Times are RFC 3339 UTC with milliseconds (`2026-11-23T08:15:02.250Z`).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Final

from pydantic import AfterValidator, PlainSerializer, StringConstraints

NODE_ID_PATTERN: Final = r"^[A-Za-z0-9_-]{1,64}$"
_NODE_ID_RE: Final = re.compile(NODE_ID_PATTERN)

#: A gateway or gate controller id; trucks are known by their gateway's node id.
NodeId = Annotated[str, StringConstraints(max_length=64, pattern=NODE_ID_PATTERN)]
#: Ids chosen by the server or a device for commands, passages, locks, trips.
RecordId = Annotated[str, StringConstraints(min_length=1, max_length=128)]


def is_node_id(value: str) -> bool:
    """True when `value` may be used as a node id (and so in a topic)."""
    return bool(_NODE_ID_RE.match(value))


def format_ts(moment: datetime) -> str:
    """RFC 3339 UTC with milliseconds and a `Z`, the only form on the wire."""
    if moment.tzinfo is None:
        raise ValueError("timestamp must carry a time zone")
    utc = moment if moment.tzinfo is UTC else moment.astimezone(UTC)
    # "YYYY-MM-DDTHH:MM:SS.mmm+00:00" (milliseconds truncated, as the wire has always
    # had them), "Z" for the offset: a third of the cost of strftime, thousands a second.
    return utc.isoformat(timespec="milliseconds")[:23] + "Z"


def parse_ts(text: str) -> datetime:
    """Parse an RFC 3339 time with an explicit offset into an aware UTC datetime."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError(f"timestamp {text!r} has no time zone (append Z for UTC)")
    try:
        return moment.astimezone(UTC)
    except OverflowError as err:
        raise ValueError(f"timestamp {text!r} is out of range once in UTC") from err


def utc_now() -> datetime:
    return datetime.now(UTC)


def _to_utc(moment: datetime) -> datetime:
    offset = moment.utcoffset()
    if offset is None:
        raise ValueError("timestamp must carry a time zone, e.g. 2026-11-23T08:15:02.250Z")
    if not offset:  # "…Z", as every edge node sends: the same instant, labelled UTC
        return moment if moment.tzinfo is UTC else moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError as err:  # 9999-12-31T23:59-01:00: past the last representable day
        raise ValueError(f"timestamp out of range once in UTC: {err}") from err


#: A timestamp field: accepts RFC 3339 with any offset, stores UTC, writes `…Z` with ms.
Timestamp = Annotated[
    datetime,
    AfterValidator(_to_utc),
    PlainSerializer(format_ts, return_type=str, when_used="json"),
]

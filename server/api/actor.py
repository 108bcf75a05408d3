"""Who is acting. Until accounts exist, the `X-BondWatch-Actor` header names the
account (default `anonymous`); authentication replaces `current_actor` alone."""

from __future__ import annotations

import re

from fastapi import Request

from server.api.errors import ApiError

ACTOR_HEADER = "X-BondWatch-Actor"
ANONYMOUS = "anonymous"
#: Names no person may act under: `system` is the rules' own name in alarm histories.
RESERVED = frozenset({"system"})
_ACTOR_RE = re.compile(r"^[\w.@:-]{1,128}$")


def current_actor(request: Request) -> str:
    """The acting account's name for audit entries and alarm histories."""
    value = request.headers.get(ACTOR_HEADER, "").strip() or ANONYMOUS
    if not _ACTOR_RE.match(value):
        raise ApiError(
            422,
            "invalid",
            f"{ACTOR_HEADER} must be 1-128 letters, digits or . @ : _ -",
            ACTOR_HEADER,
        )
    if value.lower() in RESERVED:
        raise ApiError(403, "forbidden", f"actor name {value!r} is reserved", ACTOR_HEADER)
    return value

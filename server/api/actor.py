"""Who is acting: the logged-in account (session or API token), for audit entries and
alarm histories. `system` is the rules' own name and no account may take it."""

from __future__ import annotations

from fastapi import Request

from server.auth.dependencies import current_account


async def current_actor(request: Request) -> str:
    """The acting account's user name (cached for the request by `current_account`)."""
    return (await current_account(request)).username

"""`WS /api/v1/stream`: live positions, alarms and passages for the console.

The handshake is authenticated like the REST API: the session cookie (browsers send it
with the upgrade request), or an integration token as `Authorization: Bearer bwt_…` or
`?token=bwt_…` (for clients that cannot set headers on a WebSocket). A cookie handshake
must come from the server's own origin (a page elsewhere cannot ride on the cookie).
Refusals accept and then close with 1008 (policy violation) and a reason, so the client
sees why. The session is checked again every `RECHECK_S`: a logout or expiry ends the
stream with 1008 too. A client too slow to keep up is closed with 1013; one that does not
take a message within `SEND_TIMEOUT_S` (it stopped reading: the socket's buffers are full)
is cut off. The stream takes nothing from clients: what they send is read and dropped, and
a message larger than `MAX_CLIENT_MESSAGE_BYTES` ends the connection (1009, the server's
`ws_max_size`).

Optional query parameters narrow what a client gets: `kinds=alarm,passage` (default
all three kinds) and `vehicle=TRK-1` (repeatable: the positions of those vehicles only).
A bad value is refused the same way (1008 with the reason).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from starlette.websockets import WebSocketState

from contract.ids import utc_now
from contract.version import API_PREFIX
from server.auth.accounts import Account
from server.auth.dependencies import AuthContext
from server.stream.hub import DROPPED, KINDS, Hub

log = logging.getLogger(__name__)

POLICY_VIOLATION = 1008
TRY_AGAIN_LATER = 1013
RECHECK_S = 60.0
#: Messages sent in one go once the first of them has arrived.
SEND_BURST = 256
MAX_VEHICLES = 100
#: A client that has not taken one message in this long is cut off (it stopped reading).
SEND_TIMEOUT_S = 10.0
#: The largest message a client may send (uvicorn's `ws_max_size`; the stream needs none).
MAX_CLIENT_MESSAGE_BYTES = 4096
#: Messages from a client buffered before the server stops reading its socket.
MAX_CLIENT_QUEUE = 4
NODE_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")

#: What the HTTP server (uvicorn.Config) must be given for the stream's bounds.
#: The keepalive also ends a connection whose client stopped reading: its pong never comes,
#: and the server lets go of the socket `ws_ping_interval + ws_ping_timeout` at most after.
STREAM_LIMITS: dict[str, Any] = {
    "ws_max_size": MAX_CLIENT_MESSAGE_BYTES,
    "ws_max_queue": MAX_CLIENT_QUEUE,
    "ws_ping_interval": 10.0,
    "ws_ping_timeout": 10.0,
}

stream_router = APIRouter(tags=["stream"])


def _cross_origin(ws: WebSocket) -> bool:
    origin = ws.headers.get("origin")
    if not origin:
        return False  # not a browser: cookies are the client's own
    host = ws.headers.get("host", "")
    return urlsplit(origin).netloc.lower() != host.lower()


async def authenticate(ws: WebSocket) -> tuple[Account | None, str]:
    """The account behind a handshake, or None and the reason for refusing it."""
    ctx: AuthContext = ws.app.state.auth
    now = utc_now()
    header = ws.headers.get("authorization", "")
    token = ws.query_params.get("token")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            return None, "use `Authorization: Bearer <token>`"
        token = value.strip()
    if token:
        account = await asyncio.to_thread(ctx.accounts.token_account, token, now)
        if account is not None and account.role == "device":
            return None, "a device account may only upload its passages' images"
        return (account, "") if account else (None, "the API token is unknown or revoked")
    secret = ws.cookies.get(ctx.settings.cookie_name)
    if not secret:
        return None, "log in first"
    if _cross_origin(ws):
        return None, "cross-origin stream request refused"
    account = await asyncio.to_thread(ctx.accounts.session_account, secret, now)
    return (account, "") if account else (None, "the session has ended; log in again")


def subscription(ws: WebSocket) -> tuple[frozenset[str] | None, frozenset[str] | None, str]:
    """`(kinds, vehicles, "")` from the query string, or `(None, None, reason)`."""
    kinds: frozenset[str] = frozenset(KINDS)
    raw = ws.query_params.get("kinds")
    if raw is not None:
        kinds = frozenset(k.strip() for k in raw.split(",") if k.strip())
        unknown = sorted(kinds - set(KINDS))
        if unknown or not kinds:
            return None, None, f"kinds must be a comma-separated subset of {','.join(KINDS)}"
    wanted = ws.query_params.getlist("vehicle")
    if not wanted:
        return kinds, None, ""
    if len(wanted) > MAX_VEHICLES or not all(NODE_ID.fullmatch(v) for v in wanted):
        return None, None, f"vehicle must be up to {MAX_VEHICLES} node ids [A-Za-z0-9_-]{{1,64}}"
    return kinds, frozenset(wanted), ""


async def _still_valid(ws: WebSocket, account: Account) -> bool:
    again, _ = await authenticate(ws)
    return again is not None and again.account_id == account.account_id


@stream_router.websocket(f"{API_PREFIX}/stream")
async def stream(ws: WebSocket) -> None:
    """Messages `{"type": "position"|"alarm"|"passage"|"lane", "data": {...}}`, server →
    client. Query: `kinds=position,alarm,passage,lane` (a subset), `vehicle=ID` (repeatable)."""
    account, reason = await authenticate(ws)
    if account is None:
        await ws.accept()  # then close, so that the client sees the code and the reason
        await ws.close(code=POLICY_VIOLATION, reason=reason)
        return
    kinds, vehicles, reason = subscription(ws)
    if kinds is None:
        await ws.accept()
        await ws.close(code=POLICY_VIOLATION, reason=reason)
        return
    hub: Hub = ws.app.state.stream_hub
    peer = f"{account.username}@{ws.client.host if ws.client else '?'}"
    # before accepting: nothing published after the open is lost
    client = hub.connect(peer, kinds, vehicles)
    reader: asyncio.Task[None] | None = None
    try:
        await ws.accept()
        reader = asyncio.create_task(_drain_incoming(ws), name=f"stream-read-{peer}")
        loop = asyncio.get_running_loop()
        recheck_at = loop.time() + RECHECK_S
        while True:
            getter = asyncio.ensure_future(client.next())
            done, _ = await asyncio.wait(
                {getter, reader},
                timeout=max(0.0, recheck_at - loop.time()),
                return_when=asyncio.FIRST_COMPLETED,
            )
            if reader in done:
                getter.cancel()
                return  # the client went away
            if getter not in done:
                getter.cancel()
                recheck_at = loop.time() + RECHECK_S
                if not await _still_valid(ws, account):
                    await ws.close(code=POLICY_VIOLATION, reason="the session has ended")
                    return
                continue
            # The first message and whatever queued up behind it, without waiting again.
            for message in [getter.result(), *client.ready(SEND_BURST)]:
                if message is DROPPED:
                    await asyncio.wait_for(
                        ws.close(code=TRY_AGAIN_LATER, reason="too slow: reconnect"),
                        SEND_TIMEOUT_S,
                    )
                    return
                text = json.dumps(message, ensure_ascii=False, separators=(",", ":"))
                await asyncio.wait_for(ws.send_text(text), SEND_TIMEOUT_S)
    except TimeoutError:
        log.warning("stream client %s cut off: took nothing for %g s", peer, SEND_TIMEOUT_S)
    except (WebSocketDisconnect, RuntimeError) as err:
        log.debug("stream client %s gone: %s", peer, err)
    finally:
        hub.disconnect(client)
        if reader is not None:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader
        if ws.application_state == WebSocketState.CONNECTED:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(), SEND_TIMEOUT_S)


async def _drain_incoming(ws: WebSocket) -> None:
    """Read (and ignore) what the client sends, until it disconnects."""
    while True:
        message = await ws.receive()
        if message["type"] == "websocket.disconnect":
            return

"""`WS /api/v1/stream` against hostile clients, on a real uvicorn with the server's limits.

Garbage and binary frames, a frame past the limit, a client that never reads, hundreds
of fast reconnects, unauthenticated and cross-site handshakes: the server refuses or cuts
off the one client, stays bounded (no client left in the hub, no growing queue), and
keeps serving an honest client throughout.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Literal

import httpx
import pytest
import uvicorn
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from contract.ids import utc_now
from server.app import create_app
from server.auth.accounts import AccountStore
from server.auth.config import AuthSettings
from server.services import Services
from server.stream import STREAM_LIMITS
from server.stream import websocket as stream_ws
from tests.server.assembled import assemble, server_config
from tests.server.auth.session import PASSWORD, add_account

pytestmark = pytest.mark.slow


@dataclass
class Live:
    base: str
    services: Services
    token: str
    server: uvicorn.Server

    @property
    def connections(self) -> int:
        """Connections the server holds open."""
        return len(self.server.server_state.connections)

    @property
    def url(self) -> str:
        return f"ws://{self.base}/api/v1/stream?token={self.token}"


@pytest.fixture
def live(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Live]:
    monkeypatch.setattr(stream_ws, "SEND_TIMEOUT_S", 1.0)
    services, _ = assemble(server_config(tmp_path))
    add_account(services, "officer1", "officer")
    add_account(services, "feed", "integration", password=None)
    token, _ = AccountStore(services.store.engine, AuthSettings()).issue_token(
        "test", "feed", "stream", utc_now() + timedelta(days=1), utc_now()
    )
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(services),
            host="127.0.0.1",
            port=0,
            log_level="warning",
            lifespan="off",
            # as server.app.serve runs it, with a quicker keepalive
            **(STREAM_LIMITS | {"ws_ping_interval": 1.0, "ws_ping_timeout": 1.0}),
        )
    )
    thread = threading.Thread(target=server.run, name="stream-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "server did not start"
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield Live(f"127.0.0.1:{port}", services, token, server)
    finally:
        server.should_exit = True
        thread.join(10)
        services.store.close()


async def until(condition: object, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"condition not reached: {condition.__doc__}"
        await asyncio.sleep(0.02)


async def still_served(
    live: Live, ws: ClientConnection, n: int, kind: Literal["alarm", "passage"] = "alarm"
) -> None:
    """An event published now reaches the honest client `ws`."""
    live.services.stream.publish(kind, {"probe": n})
    while True:
        message = json.loads(await asyncio.wait_for(ws.recv(), 5))
        if message["data"].get("probe") == n:
            return


async def test_garbage_binary_and_oversize_frames_cut_off_only_their_sender(live: Live) -> None:
    async with connect(live.url) as honest:
        await until(lambda: live.services.stream.client_count == 1)
        async with connect(live.url) as hostile:
            await until(lambda: live.services.stream.client_count == 2)
            for frame in ("{not json", "\x00" * 100, '{"type":"subscribe","kinds":["*"]}'):
                await hostile.send(frame)
            await hostile.send(bytes(range(256)) * 8)  # binary
            await still_served(live, honest, 1)
            assert live.services.stream.client_count == 2  # small frames are ignored
            await hostile.send(b"x" * (stream_ws.MAX_CLIENT_MESSAGE_BYTES + 1))
            with pytest.raises(ConnectionClosed) as closed:
                await drain(hostile)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
        await until(lambda: live.services.stream.client_count == 1)
        await still_served(live, honest, 2)


async def test_a_client_that_never_reads_is_dropped_and_cut_off(live: Live) -> None:
    hub = live.services.stream
    # max_queue=1: the client library stops reading its socket after one message, so the
    # server's writes back up as with a client that hangs.
    # The honest client takes passages only: the flood of alarms is the stalled one's.
    async with (
        connect(live.url + "&kinds=passage") as honest,
        connect(live.url, max_queue=1) as stalled,
    ):
        await until(lambda: hub.client_count == 2)
        blob = "y" * 20_000
        for i in range(4 * hub.queue_size):
            hub.publish("alarm", {"i": i, "blob": blob})
            if i % 1000 == 0:
                await asyncio.sleep(0.05)
        # Dropped from the hub (its queue is gone) and its connection cut off in time.
        await until(lambda: hub.client_count == 1, 15)
        # The server let go of its socket (the stalled client cannot even read the close).
        await until(lambda: live.connections == 1, 10)
        assert stalled.state.name == "OPEN"  # as the client sees it: it is not reading
        await still_served(live, honest, 3, "passage")


async def drain(ws: ClientConnection, idle_s: float | None = 10) -> None:
    """Read until the connection closes (raises ConnectionClosed)."""
    while True:
        await asyncio.wait_for(ws.recv(), idle_s)


async def test_fast_reconnects_leave_nothing_behind(live: Live) -> None:
    hub = live.services.stream
    for _ in range(200):
        async with connect(live.url):
            pass
    # …and ones that vanish without a close handshake
    for _ in range(50):
        ws = await connect(live.url)
        ws.transport.abort()
    await until(lambda: hub.client_count == 0, 15)
    async with connect(live.url) as honest:
        await until(lambda: hub.client_count == 1)
        await still_served(live, honest, 4)


async def test_unauthenticated_and_cross_site_handshakes_are_refused(live: Live) -> None:
    base = live.base
    refusals = [
        (f"ws://{base}/api/v1/stream", {}),
        (f"ws://{base}/api/v1/stream?token=bwt_forged", {}),
        (f"ws://{base}/api/v1/stream", {"Authorization": "Basic b2ZmaWNlcjE6eA=="}),
        (f"ws://{base}/api/v1/stream", {"Cookie": "bw_session=guessed"}),
        (f"ws://{base}/api/v1/stream?token={live.token}&kinds=*", {}),
        (f"ws://{base}/api/v1/stream?token={live.token}&vehicle=../../x", {}),
    ]
    async with httpx.AsyncClient(base_url=f"http://{base}") as http:
        res = await http.post(
            "/api/v1/auth/login", json={"username": "officer1", "password": PASSWORD}
        )
        assert res.status_code == 200, res.text
        cookie = "; ".join(f"{k}={v}" for k, v in http.cookies.items())
    # A real session cookie, but the page doing the handshake is another site's (CSRF).
    refusals.append(
        (f"ws://{base}/api/v1/stream", {"Cookie": cookie, "Origin": "http://evil.example"})
    )
    for url, headers in refusals:
        with pytest.raises(ConnectionClosed) as refused:
            async with connect(url, additional_headers=headers) as ws:
                await asyncio.wait_for(ws.recv(), 5)
        assert refused.value.rcvd is not None and refused.value.rcvd.code == 1008, url
    assert live.services.stream.client_count == 0
    # The same cookie from the server's own page is let in.
    async with connect(
        f"ws://{base}/api/v1/stream",
        additional_headers={"Cookie": cookie, "Origin": f"http://{base}"},
    ) as ws:
        await still_served(live, ws, 5)

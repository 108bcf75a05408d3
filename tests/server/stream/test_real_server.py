"""`WS /api/v1/stream` on the real server (uvicorn) fed by a real Mosquitto and the ingest."""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path
from typing import Any

import aiomqtt
import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from contract import topics
from contract.broker import BrokerSettings
from devtools.broker import free_port
from server.app import serve
from server.config import HttpSettings, IngestSettings, ServerConfig, StorageSettings
from server.store import Store
from tests.server.auth.session import PASSWORD
from tests.server.conftest import demo_geography
from tests.server.test_ingest import position

pytestmark = pytest.mark.slow


async def test_live_positions_over_the_real_server(broker: Any, tmp_path: Path) -> None:
    from contract.ids import utc_now
    from server.auth.accounts import AccountStore
    from server.auth.config import AuthSettings

    url = f"sqlite:///{tmp_path / 'store.db'}"
    store = Store.open(url)
    AccountStore(store.engine, AuthSettings()).create(
        "test", "officer1", "Officer", "officer", PASSWORD, utc_now()
    )
    store.close()
    port = free_port()
    config = ServerConfig(
        broker=BrokerSettings(host=broker.host, port=broker.port, client_id=f"srv-{port}"),
        http=HttpSettings(host="127.0.0.1", port=port),
        storage=StorageSettings(url=url),
        geography=demo_geography(),
        ingest=IngestSettings(batch_wait_ms=5),
    )
    ready = asyncio.Event()
    server = asyncio.create_task(serve(config, ready))
    try:
        await asyncio.wait_for(ready.wait(), 20)
        base = f"127.0.0.1:{port}"
        with pytest.raises(ConnectionClosed) as refused:
            async with connect(f"ws://{base}/api/v1/stream") as ws:
                await asyncio.wait_for(ws.recv(), 5)
        assert refused.value.rcvd is not None and refused.value.rcvd.code == 1008

        async with httpx.AsyncClient(base_url=f"http://{base}") as http:
            res = await http.post(
                "/api/v1/auth/login", json={"username": "officer1", "password": PASSWORD}
            )
            assert res.status_code == 200, res.text
            cookie = "; ".join(f"{k}={v}" for k, v in http.cookies.items())
        async with connect(
            f"ws://{base}/api/v1/stream",
            additional_headers={"Cookie": cookie, "Origin": f"http://{base}"},
        ) as ws:
            for _ in range(100):  # the ingest subscribes shortly after the HTTP side is up
                async with aiomqtt.Client(broker.host, broker.port, identifier="ws-pub") as pub:
                    await pub.publish(topics.position("TRK-7"), position(1, node="TRK-7"), qos=1)
                with contextlib.suppress(TimeoutError):
                    first = json.loads(await asyncio.wait_for(ws.recv(), 0.5))
                    break
            assert first["type"] == "position"
            assert (first["data"]["vehicle_id"], first["data"]["seq"]) == ("TRK-7", 1)
            async with aiomqtt.Client(broker.host, broker.port, identifier="ws-pub") as pub:
                for seq in range(2, 7):
                    await pub.publish(topics.position("TRK-7"), position(seq, node="TRK-7"), qos=1)
            # throttled to 1/s per vehicle: the newest of the burst, and only that
            second = json.loads(await asyncio.wait_for(ws.recv(), 5))
            assert second["data"]["seq"] == 6
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(ws.recv(), 1.5)
    finally:
        server.cancel()
        await asyncio.gather(server, return_exceptions=True)

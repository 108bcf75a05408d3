"""`WS /api/v1/stream` through Starlette's TestClient: authentication, events, slow clients."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from contract.ids import utc_now
from server.app import create_app
from server.auth.accounts import AccountStore
from server.auth.config import AuthSettings
from server.services import Services
from tests.server.auth.session import login_as

URL = "/api/v1/stream"


def refused(client: TestClient, url: str = URL, **kwargs: Any) -> tuple[int, str]:
    with client.websocket_connect(url, **kwargs) as ws, pytest.raises(WebSocketDisconnect) as err:
        ws.receive_json()
    return err.value.code, err.value.reason


def integration_token(services: Services) -> str:
    accounts = AccountStore(services.store.engine, AuthSettings())
    now = utc_now()
    accounts.create("test", "decl-system", "Declarations", "integration", None, now)
    token, _ = accounts.issue_token("test", "decl-system", "stream", None, now)
    return token


def test_unauthenticated_refused_with_1008(services: Services) -> None:
    with TestClient(create_app(services)) as client:
        assert refused(client) == (1008, "log in first")
        client.cookies.set(services.config.auth.cookie_name, "not-a-session")
        assert refused(client)[0] == 1008
        client.cookies.clear()
        assert refused(client, f"{URL}?token=bwt_bogus")[0] == 1008
        assert refused(client, headers={"Authorization": "Basic eDp5"})[0] == 1008


def test_session_gets_positions_alarms_passages(api: TestClient, services: Services) -> None:
    with api.websocket_connect(URL) as ws:
        assert services.stream.client_count == 1
        services.stream.publish("position", {"vehicle_id": "TRK-1", "seq": 1, "lat": 23.1})
        assert ws.receive_json() == {
            "type": "position",
            "data": {"vehicle_id": "TRK-1", "seq": 1, "lat": 23.1},
        }
        services.stream.publish("passage", {"gate_id": "G-HUANGPU-1", "direction": "out"})
        assert ws.receive_json()["data"]["gate_id"] == "G-HUANGPU-1"

        # a rule raises an alarm (judge → AlarmEffects → service), an officer acks it
        assert services.alarms is not None
        at = utc_now() - timedelta(minutes=1)
        outcome = services.alarms.raise_("T-1", "TRK-1", "LOCK_TAMPER", "critical", at, None, "x")
        services.alarms.notify([outcome.alarm_id])
        raised = ws.receive_json()
        assert raised["type"] == "alarm"
        assert raised["data"]["id"] == outcome.alarm_id
        assert raised["data"]["status"] == "active_unack"
        res = api.post(f"/api/v1/alarms/{outcome.alarm_id}/ack", json={"comment": "seen"})
        assert res.status_code == 200, res.text
        acked = ws.receive_json()
        assert (acked["data"]["id"], acked["data"]["status"]) == (outcome.alarm_id, "active_ack")
    assert services.stream.client_count == 0


def test_alarm_effects_reach_the_stream(api: TestClient, services: Services) -> None:
    from server.alarms.effects import AlarmEffects
    from server.rules.alarms import Clear, Raise
    from server.store.trip import Trip

    assert services.alarms is not None
    effects = AlarmEffects(services.alarms)
    at = utc_now()
    trip = Trip("T-9", "D-9", "TRK-9", "R-1", "in_transit", at, at, None, 240)
    with api.websocket_connect(URL) as ws:
        effects.apply(trip, [Raise("OVERSPEED", "minor", at, (113.5, 23.1), {"kmh": 95})])
        msg = ws.receive_json()
        assert (msg["data"]["type"], msg["data"]["status"]) == ("OVERSPEED", "active_unack")
        assert msg["data"]["position"] == {"type": "Point", "coordinates": [113.5, 23.1]}
        effects.apply(trip, [Raise("OVERSPEED", "minor", at, (113.5, 23.1), {"kmh": 95})])
        effects.apply(trip, [Clear("OVERSPEED", at + timedelta(seconds=30), {})])
        msg = ws.receive_json()  # the repeat was absorbed: the next message is the clear
        assert msg["data"]["status"] == "cleared_unack"


def test_integration_token_by_query_or_header(services: Services) -> None:
    token = integration_token(services)
    with TestClient(create_app(services)) as client:
        with client.websocket_connect(f"{URL}?token={token}") as ws:
            services.stream.publish("passage", {"n": 1})
            assert ws.receive_json() == {"type": "passage", "data": {"n": 1}}
        with client.websocket_connect(URL, headers={"Authorization": f"Bearer {token}"}) as ws:
            services.stream.publish("passage", {"n": 2})
            assert ws.receive_json() == {"type": "passage", "data": {"n": 2}}


def test_cookie_from_another_origin_refused(api: TestClient) -> None:
    code, reason = refused(api, headers={"Origin": "https://evil.example"})
    assert (code, reason) == (1008, "cross-origin stream request refused")
    with api.websocket_connect(URL, headers={"Origin": "http://testserver"}) as ws:
        api.app.state.stream_hub.publish("passage", {"ok": True})  # type: ignore[attr-defined]
        assert ws.receive_json()["data"] == {"ok": True}


def test_logged_out_session_refused(api: TestClient) -> None:
    assert api.post("/api/v1/auth/logout").status_code == 204
    api.cookies.clear()
    assert refused(api)[0] == 1008


def test_slow_client_closed_with_1013(services: Services) -> None:
    services.stream.queue_size = 5
    app = create_app(services)
    with TestClient(app) as client:
        login_as(client, services, "officer")
        with client.websocket_connect(URL) as ws:
            hub = services.stream
            loop = hub._loop
            assert loop is not None

            def burst() -> None:  # 100 events before the sender gets a turn
                for n in range(100):
                    hub.publish("passage", {"n": n})

            loop.call_soon_threadsafe(burst)
            got: list[Any] = []
            code = None
            while code is None:
                try:
                    got.append(ws.receive_json())
                except WebSocketDisconnect as err:
                    code = err.code
            assert code == 1013
            assert len(got) <= 5
            assert hub.dropped_clients == 1


def test_kinds_and_vehicle_narrow_the_subscription(api: TestClient, services: Services) -> None:
    hub = services.stream
    with (
        api.websocket_connect(f"{URL}?kinds=alarm,passage") as queue,
        api.websocket_connect(f"{URL}?kinds=position&vehicle=TRK-2&vehicle=TRK-3") as trip,
        api.websocket_connect(URL) as everything,
    ):
        for vehicle in ("TRK-1", "TRK-2"):
            hub.publish("position", {"vehicle_id": vehicle, "seq": 1})
        hub.publish("passage", {"n": 1})
        assert [everything.receive_json()["type"] for _ in range(3)] == [
            "position",
            "position",
            "passage",
        ]
        # the queue skipped both positions, the trip page took TRK-2's only
        assert queue.receive_json() == {"type": "passage", "data": {"n": 1}}
        took = trip.receive_json()
        assert took == {"type": "position", "data": {"vehicle_id": "TRK-2", "seq": 1}}
        hub.publish("position", {"vehicle_id": "TRK-3", "seq": 1})
        assert trip.receive_json()["data"]["vehicle_id"] == "TRK-3"
        assert everything.receive_json()["data"]["vehicle_id"] == "TRK-3"
    for bad in ("kinds=", "kinds=alarm,lock", "vehicle=TRK 1", "vehicle=" + "x" * 65):
        code, reason = refused(api, f"{URL}?{bad}")
        assert code == 1008 and reason.startswith(("kinds must", "vehicle must")), (bad, reason)
    assert hub.client_count == 0

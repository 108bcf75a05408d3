from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from server.alarms import AlarmService
from server.app import create_app
from server.store import StoreError
from tests.server.auth.session import add_account, login

T0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


@pytest.fixture
def client_as(services):
    """A logged-in client per account: `client_as("officer.wang", "officer")`."""
    clients = []

    def make(username: str, role: str) -> TestClient:
        add_account(services, username, role)  # type: ignore[arg-type]
        client = TestClient(create_app(services))
        client.__enter__()
        clients.append(client)
        login(client, username)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def raised(services):
    """Three alarms: a critical tamper, a major deviation (older), a cleared battery alarm."""
    alarms = AlarmService(services.store.engine)
    dev = alarms.raise_(
        "D-0001", "TRK-1", "ROUTE_DEVIATION", "major", T0, (113.45, 23.12), "300 m out"
    )
    alarms.raise_(
        "D-0001", "TRK-1", "ROUTE_DEVIATION", "major", T0 + timedelta(seconds=30), None, "again"
    )
    tamper = alarms.raise_(
        "D-0002", "TRK-2", "LOCK_TAMPER", "critical", T0 + timedelta(minutes=5), None, "rope cut"
    )
    battery = alarms.raise_(
        "D-0001", "TRK-1", "LOCK_LOW_BATTERY", "warning", T0, (113.4, 23.1), "battery 9 %"
    )
    alarms.clear("D-0001", "LOCK_LOW_BATTERY", T0 + timedelta(minutes=1), "battery 30 %")
    return {"dev": dev.alarm_id, "tamper": tamper.alarm_id, "battery": battery.alarm_id}


def test_list_sorted_filtered_and_paged(api, raised):
    res = api.get("/api/v1/alarms")
    assert res.status_code == 200 and res.headers["X-Total-Count"] == "3"
    body = res.json()
    assert [a["id"] for a in body] == [raised["tamper"], raised["dev"], raised["battery"]]
    dev = body[1]
    assert dev["type"] == "ROUTE_DEVIATION" and dev["count"] == 2
    assert (dev["first_at"], dev["last_at"]) == (
        "2026-11-23T08:00:00.000Z",
        "2026-11-23T08:00:30.000Z",
    )
    assert dev["position"] == {"type": "Point", "coordinates": [113.45, 23.12]}  # [lon, lat]
    assert dev["status"] == "active_unack" and dev["assignee"] is None and dev["comments"] == []
    assert "history" not in dev
    active = api.get("/api/v1/alarms", params={"state": "active"}).json()
    assert [a["id"] for a in active] == [raised["tamper"], raised["dev"]]
    cleared = api.get("/api/v1/alarms", params={"state": "cleared"}).json()
    assert [a["status"] for a in cleared] == ["cleared_unack"]
    for params, ids in [
        ({"trip_id": "D-0002"}, [raised["tamper"]]),
        ({"vehicle_id": "TRK-1", "severity": "major"}, [raised["dev"]]),
        ({"type": "LOCK_LOW_BATTERY"}, [raised["battery"]]),
        ({"status": "active_unack", "limit": 1, "offset": 1}, [raised["dev"]]),
        ({"assignee": "nobody"}, []),
    ]:
        assert [a["id"] for a in api.get("/api/v1/alarms", params=params).json()] == ids, params


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"state": "open"}, "state"),
        ({"status": "closed"}, "status"),
        ({"severity": "fatal"}, "severity"),
        ({"limit": 0}, "limit"),
        ({"offset": -1}, "offset"),
    ],
)
def test_bad_filters_in_contract_shape(api, params, field):
    res = api.get("/api/v1/alarms", params=params)
    assert res.status_code == 422
    assert res.json()["error"]["code"] == "invalid" and res.json()["error"]["field"] == field


def test_officer_actions_with_history_and_audit(api, raised, client_as):
    a = raised["dev"]
    li = client_as("officer.li", "supervisor")
    wang = client_as("officer.wang", "officer")
    res = wang.post(
        f"/api/v1/alarms/{a}/assign", json={"assignee": "officer.wang", "comment": "mine"}
    )
    assert res.status_code == 403  # assigning is a supervisor's
    res = li.post(
        f"/api/v1/alarms/{a}/assign", json={"assignee": "officer.wang", "comment": "yours"}
    )
    assert res.status_code == 200 and res.json()["assignee"] == "officer.wang"
    res = wang.post(f"/api/v1/alarms/{a}/ack", json={"comment": "on it"})
    assert res.json()["status"] == "active_ack"
    wang.post(f"/api/v1/alarms/{a}/comment", json={"comment": "driver called"})
    res = wang.post(f"/api/v1/alarms/{a}/clear", json={"comment": "road closed"})
    assert res.json()["status"] == "cleared_ack"
    detail = api.get(f"/api/v1/alarms/{a}").json()
    assert [
        (h["action"], h["actor"], h["from_status"], h["to_status"]) for h in detail["history"]
    ] == [
        ("raise", "system", None, "active_unack"),
        ("assign", "officer.li", "active_unack", "active_unack"),
        ("ack", "officer.wang", "active_unack", "active_ack"),
        ("comment", "officer.wang", "active_ack", "active_ack"),
        ("clear", "officer.wang", "active_ack", "cleared_ack"),
    ]
    assert [c["text"] for c in detail["comments"]] == [
        "yours",
        "on it",
        "driver called",
        "road closed",
    ]
    assert detail["history"][0]["at"] == "2026-11-23T08:00:00.000Z"
    audit = api.get("/api/v1/audit", params={"object_type": "alarm", "order": "asc"}).json()
    assert [(e["actor"], e["action"], e["object_id"]) for e in audit] == [
        ("officer.li", "alarm.assign", str(a)),
        ("officer.wang", "alarm.ack", str(a)),
        ("officer.wang", "alarm.comment", str(a)),
        ("officer.wang", "alarm.clear", str(a)),
    ]
    assert audit[1]["details"] == {"from": "active_unack", "to": "active_ack", "comment": "on it"}
    verdict = api.get("/api/v1/audit/verify").json()
    assert verdict["ok"] is True and verdict["entries"] >= 4


@pytest.mark.parametrize("action", ["ack", "clear", "assign", "comment"])
@pytest.mark.parametrize("body", [{}, {"comment": ""}, {"comment": "   "}])
def test_comment_required(api, raised, services, action, body):
    a = raised["dev"]
    if action == "assign":
        add_account(services, "officer.wang", "officer")
        body = {**body, "assignee": "officer.wang"}
    res = api.post(f"/api/v1/alarms/{a}/{action}", json=body)
    assert res.status_code == 422, res.text
    assert res.json()["error"]["field"] == "comment" and res.json()["error"]["code"] == "invalid"
    detail = api.get(f"/api/v1/alarms/{a}").json()
    assert detail["status"] == "active_unack" and len(detail["history"]) == 1
    assert api.get("/api/v1/audit", params={"object_type": "alarm"}).json() == []


def test_refused_transition_is_409_and_changes_nothing(api, raised, services):
    a = raised["battery"]  # cleared_unack
    before = api.get(f"/api/v1/alarms/{a}").json()
    res = api.post(f"/api/v1/alarms/{a}/clear", json={"comment": "again"})
    assert res.status_code == 409
    error = res.json()["error"]
    assert error["code"] == "conflict" and error["field"] == "status"
    assert "already cleared" in error["message"]
    assert api.get(f"/api/v1/alarms/{a}").json() == before
    assert api.get("/api/v1/audit", params={"object_type": "alarm"}).json() == []
    assert api.post(f"/api/v1/alarms/{a}/ack", json={"comment": "seen"}).status_code == 200
    add_account(services, "officer.wang", "officer")
    res = api.post(
        f"/api/v1/alarms/{a}/assign", json={"assignee": "officer.wang", "comment": "late"}
    )
    assert res.status_code == 409 and "closed" in res.json()["error"]["message"]


def test_unknown_alarm_and_the_acting_account(api, raised, services):
    res = api.get("/api/v1/alarms/999")
    assert res.status_code == 404 and res.json()["error"]["field"] == "alarm_id"
    assert api.post("/api/v1/alarms/999/ack", json={"comment": "x"}).status_code == 404
    assert api.get("/api/v1/alarms/abc").status_code == 422
    a = raised["tamper"]
    with pytest.raises(StoreError, match="reserved"):
        add_account(services, "system", "officer")  # nobody may sign as the rules
    res = api.post(
        f"/api/v1/alarms/{a}/ack", json={"comment": "x"}, headers={"X-BondWatch-Actor": "other"}
    )
    assert res.json()["history"][-1]["actor"] == "test-supervisor"  # the header counts for nothing
    res = api.post(f"/api/v1/alarms/{a}/ack", json={"comment": "seen", "extra": 1})
    assert res.status_code == 422 and res.json()["error"]["field"] == "extra"
    res = api.post(f"/api/v1/alarms/{a}/comment", json={"comment": "seen"})
    assert res.json()["history"][-1]["actor"] == "test-supervisor"


def test_unassign_with_null(api, raised, services):
    a = raised["tamper"]
    add_account(services, "officer.wang", "officer")
    res = api.post(f"/api/v1/alarms/{a}/assign", json={"assignee": "officer.wang", "comment": "x"})
    assert res.status_code == 200, res.text
    res = api.post(f"/api/v1/alarms/{a}/assign", json={"assignee": None, "comment": "back"})
    assert res.status_code == 200 and res.json()["assignee"] is None
    assert res.json()["history"][-1]["detail"] == "assignee officer.wang → -"


def test_openapi_lists_alarm_and_audit_paths(api):
    paths = api.get("/openapi.json").json()["paths"]
    for path in (
        "/api/v1/alarms",
        "/api/v1/alarms/{alarm_id}",
        "/api/v1/alarms/{alarm_id}/ack",
        "/api/v1/alarms/{alarm_id}/assign",
        "/api/v1/alarms/{alarm_id}/clear",
        "/api/v1/alarms/{alarm_id}/comment",
        "/api/v1/audit",
        "/api/v1/audit/verify",
    ):
        assert path in paths, path


def test_openapi_alarm_schema_has_the_contract_fields(api):
    schemas = api.get("/openapi.json").json()["components"]["schemas"]
    fields = set(schemas["AlarmOut"]["properties"])
    contract = "id type severity trip_id vehicle_id first_at last_at count position status"
    assert set(contract.split()) | {"assignee", "comments"} <= fields
    assert set(schemas["VerifyOut"]["properties"]) == {
        "ok",
        "entries",
        "first_bad_seq",
        "reason",
        "checkpoints",  # signed checkpoints outside the database (docs/alarms-and-audit.md)
        "checkpoint",
    }


def test_alarm_vehicles_for_the_map(api, raised, services):
    AlarmService(services.store.engine).raise_(
        "D-0001", "TRK-1", "LOCK_TAMPER", "critical", T0, None, "shell"
    )
    res = api.get("/api/v1/console/alarm-vehicles")
    assert res.status_code == 200, res.text
    body = res.json()
    trk1 = next(a for a in body if a["vehicle_id"] == "TRK-1")
    assert trk1["severity"] == "critical" and len(trk1["alarm_ids"]) == 2
    assert raised["dev"] in trk1["alarm_ids"] and raised["battery"] not in trk1["alarm_ids"]
    assert [a for a in body if a["vehicle_id"] == "TRK-2"] == [
        {"vehicle_id": "TRK-2", "alarm_ids": [raised["tamper"]], "severity": "critical"}
    ]

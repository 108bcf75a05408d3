"""State rules an outside review of the REST API found broken (2026-12-08), each checked
the way an officer or an integration meets it: a release decides a held arrival on the
officer's correction, not on the camera's reading; an override back to `hold` reopens the
trip; two admins demoting each other at once leave one admin; a query's time is an
instant whatever its offset; an alarm goes only to an officer or a supervisor."""

from __future__ import annotations

import threading
from datetime import timedelta, timezone

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from contract.ids import format_ts, parse_ts, utc_now
from server.auth.accounts import AccountStore
from server.auth.config import AuthSettings
from server.store import Store, StoreError, schema
from tests.server.auth.session import add_account
from tests.server.gates.conftest import GateWorld, integration_client
from tests.server.gates.test_corrections import MISREAD, correct, pass_misread
from tests.server.gates.test_service import DEST, depart, pass_gate


def release(client: TestClient) -> dict[str, object]:
    res = client.post(
        "/api/v1/declarations/D-0001/release",
        json={"release_id": "REL-1", "released_at": format_ts(utc_now())},
    )
    assert res.status_code == 201, res.text
    body: dict[str, object] = res.json()
    return body


def trip_status(world: GateWorld) -> str:
    trip = world.services.store.get_trip("D-0001")
    assert trip is not None
    return trip.status


def test_a_release_decides_a_held_arrival_on_the_officers_correction(
    gate_world: GateWorld, gate_api: TestClient
) -> None:
    """The camera misread the check digit; the officer corrected it; only the release was
    missing: the release record releases the trip."""
    depart(gate_world)
    command = pass_misread(gate_world, "P-ARR-1", MISREAD)
    assert command is not None and command.action == "hold"
    res = correct(gate_api, containers=["CSQU3054383"], comment="read at the lane")
    assert res.status_code == 200 and res.json()["reasons"] == ["no electronic release record"]
    answer = release(integration_client(gate_api, gate_world.services))
    assert (answer["trip_status"], answer["hold_reasons"]) == ("released", [])
    assert trip_status(gate_world) == "released"


def test_a_release_keeps_held_an_arrival_whose_corrected_plate_is_not_declared(
    gate_world: GateWorld, gate_api: TestClient
) -> None:
    depart(gate_world)
    pass_gate(gate_world, DEST, "P-ARR-1", 5)  # held: no release record yet
    plate = "粤B·77777"
    res = correct(gate_api, plate=plate, comment=f"the truck is {plate}")
    assert res.status_code == 200 and res.json()["decision"] == "hold"
    answer = release(integration_client(gate_api, gate_world.services))
    assert answer["trip_status"] == "held"
    assert answer["hold_reasons"] == [f"plate {plate} is not the declared 粤A·D3K21"]
    assert trip_status(gate_world) == "held"


def test_an_override_to_hold_after_an_open_reopens_the_trip(
    gate_world: GateWorld, gate_api: TestClient
) -> None:
    depart(gate_world)
    pass_gate(gate_world, DEST, "P-ARR-1", 5)
    for action in ("open", "hold"):
        res = gate_api.post(
            "/api/v1/passages/P-ARR-1/override",
            json={"action": action, "comment": f"{action} by the officer at the lane"},
        )
        assert res.status_code == 200, res.text
    trip = gate_world.services.store.get_trip("D-0001")
    assert trip is not None and trip.status == "held" and trip.ended_at is None


def test_two_admins_demoting_each_other_at_once_leave_one_admin(store_url: str) -> None:
    store = Store.open(store_url)
    accounts = AccountStore(store.engine, AuthSettings())
    try:
        for round_ in range(8):
            names = (f"adm-{round_}-a", f"adm-{round_}-b")
            for name in names:
                accounts.create("test", name, name, "admin", "a good password", utc_now())
            start = threading.Barrier(2)
            outcomes: list[str] = []

            def demote(
                actor: str,
                target: str,
                start: threading.Barrier = start,
                outcomes: list[str] = outcomes,
            ) -> None:
                start.wait()
                try:
                    accounts.update(actor, target, utc_now(), disabled=True)
                    outcomes.append("done")
                except StoreError as err:
                    outcomes.append(err.code)

            threads = [
                threading.Thread(target=demote, args=(names[0], names[1])),
                threading.Thread(target=demote, args=(names[1], names[0])),
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert sorted(outcomes) == ["conflict", "done"]
            active = [a for a in accounts.list_accounts() if a.role == "admin" and not a.disabled]
            assert len(active) == 1
            for name in names:  # the next round starts again from none
                with store.engine.begin() as conn:
                    conn.execute(schema.accounts.delete().where(schema.accounts.c.username == name))
    finally:
        store.close()


@pytest.mark.parametrize("offset_h", [8, -10, 0])
def test_a_query_time_with_an_offset_is_the_same_instant(
    gate_world: GateWorld, gate_api: TestClient, offset_h: int
) -> None:
    """The passage happened at `at`; a minute before it, in any offset, finds it; a minute
    after it does not."""
    depart(gate_world)
    pass_gate(gate_world, DEST, "P-ARR-1", 30)
    (passage,) = [p for p in gate_api.get("/api/v1/passages").json() if p["phase"] == "arrival"]
    at = passage["ts"]
    instant = parse_ts(at)
    zone = timezone(timedelta(hours=offset_h))
    for delta, found in ((-1, True), (1, False)):
        since = (instant + timedelta(minutes=delta)).astimezone(zone).isoformat()
        res = gate_api.get("/api/v1/passages", params={"since": since})
        assert res.status_code == 200, res.text
        ids = [p["passage_id"] for p in res.json()]
        assert ("P-ARR-1" in ids) is found, (since, ids)
    naive = gate_api.get("/api/v1/passages", params={"since": "2026-12-08T08:00:00"})
    assert naive.status_code == 422 and "time zone" in naive.json()["error"]["message"]


def test_an_alarm_is_assigned_only_to_an_enabled_officer_or_supervisor(
    gate_world: GateWorld, gate_api: TestClient
) -> None:
    services = gate_world.services
    add_account(services, "u-officer", "officer")
    add_account(services, "u-admin", "admin")
    add_account(services, "u-gone", "officer")
    add_account(services, "decl", "integration", password=None)
    AccountStore(services.store.engine, AuthSettings()).update(
        "test", "u-gone", utc_now(), disabled=True
    )
    depart(gate_world)
    raised = services.alarms.raise_(
        "D-0001", "TRK-0001", "GNSS_LOST", "minor", utc_now(), None, "no fix for 5 min"
    )
    assert raised is not None
    alarm_id = raised.alarm_id

    def audit_rows() -> int:
        with services.store.engine.connect() as conn:
            return int(
                conn.execute(select(func.count()).select_from(schema.audit_log)).scalar_one()
            )

    before = audit_rows()
    for who in ("no-such-account", "system", "decl", "u-admin", "u-gone", DEST):
        res = gate_api.post(
            f"/api/v1/alarms/{alarm_id}/assign", json={"assignee": who, "comment": "yours"}
        )
        assert res.status_code == 422, (who, res.text)
        assert "not an enabled officer or supervisor" in res.json()["error"]["message"]
    assert audit_rows() == before
    res = gate_api.post(
        f"/api/v1/alarms/{alarm_id}/assign", json={"assignee": "u-officer", "comment": "yours"}
    )
    assert res.status_code == 200 and res.json()["assignee"] == "u-officer"

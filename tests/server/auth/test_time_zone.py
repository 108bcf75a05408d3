"""Each account's own time zone: `PATCH /api/v1/auth/me`, kept in the accounts table,
answered by `/auth/me`, audited in the account's name."""

from __future__ import annotations

from sqlalchemy import select

from server.audit import AuditQuery, list_entries
from server.store import schema
from tests.server.auth.session import add_account, login


def stored_zone(services, username: str) -> str | None:
    with services.store.engine.connect() as conn:
        return conn.execute(
            select(schema.accounts.c.time_zone).where(schema.accounts.c.username == username)
        ).scalar_one()


def test_each_officer_sets_a_zone_of_their_own(make_client, services):
    add_account(services, "officer.bj", "officer")
    add_account(services, "officer.de", "officer")
    beijing, berlin = make_client(), make_client()
    login(beijing, "officer.bj")
    login(berlin, "officer.de")
    me = beijing.get("/api/v1/auth/me").json()
    assert (me["time_zone"], me["account"]["time_zone"]) == ("Asia/Shanghai", None)

    res = berlin.patch("/api/v1/auth/me", json={"time_zone": "Europe/Berlin"})
    assert res.status_code == 200, res.text
    assert (res.json()["time_zone"], res.json()["account"]["time_zone"]) == (
        "Europe/Berlin",
        "Europe/Berlin",
    )
    assert res.json()["csrf_token"] == berlin.headers["X-CSRF-Token"]  # the same session
    assert berlin.get("/api/v1/auth/me").json()["time_zone"] == "Europe/Berlin"
    assert beijing.get("/api/v1/auth/me").json()["time_zone"] == "Asia/Shanghai"
    assert stored_zone(services, "officer.de") == "Europe/Berlin"
    assert stored_zone(services, "officer.bj") is None

    entries, _ = list_entries(services.store.engine, AuditQuery(action="account.time_zone"))
    assert [(e.actor, e.object_id, e.as_json()["details"]) for e in entries] == [
        ("officer.de", "officer.de", {"time_zone": "Europe/Berlin", "previous": None})
    ]

    # Back to the console's default.
    res = berlin.patch("/api/v1/auth/me", json={"time_zone": None})
    assert res.status_code == 200 and res.json()["time_zone"] == "Asia/Shanghai"
    assert stored_zone(services, "officer.de") is None


def test_unknown_zone_is_refused_and_nothing_changes(make_client, services):
    add_account(services, "officer.x", "officer")
    client = make_client()
    login(client, "officer.x")
    for bad in ("Mars/Olympus_Mons", "../../etc/passwd", "asia/shanghai", ""):
        res = client.patch("/api/v1/auth/me", json={"time_zone": bad})
        assert res.status_code == 422, bad
        assert res.json()["error"]["field"] == "time_zone"
    res = client.patch("/api/v1/auth/me", json={"time_zone": "UTC", "role": "admin"})
    assert res.status_code == 422  # nothing else is settable here
    assert stored_zone(services, "officer.x") is None


def test_time_zone_change_needs_the_session_and_its_csrf_token(make_client, services):
    add_account(services, "officer.y", "officer")
    client = make_client()
    assert client.patch("/api/v1/auth/me", json={"time_zone": "UTC"}).status_code == 401
    login(client, "officer.y")
    del client.headers["X-CSRF-Token"]
    res = client.patch("/api/v1/auth/me", json={"time_zone": "UTC"})
    assert res.status_code == 403 and res.json()["error"]["code"] == "csrf"
    assert stored_zone(services, "officer.y") is None

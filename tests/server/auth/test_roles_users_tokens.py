"""Roles on the REST API, user management by admins, integration tokens, the audit seam and
the create-admin command."""

from __future__ import annotations

import dataclasses
import io
import json

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, text

from server.__main__ import main as server_main
from server.api.operations import operations_app
from server.app import create_app
from server.audit import verify
from server.auth.policy import roles_for
from server.config import HttpSettings, OperationsListener
from server.store import Store, schema
from tests.server.auth.session import PASSWORD, add_account, login
from tests.server.conftest import declaration

OPERATIONS = ("/metrics", "/api/v1/metrics", "/openapi.json", "/docs", "/redoc")


def test_reads_metrics_and_api_docs_need_an_account_health_does_not(make_client, services):
    client = make_client()
    for path in (
        "/api/v1/trips",
        "/api/v1/routes",
        "/api/v1/vehicles/positions",
        "/api/v1/users",
        *OPERATIONS,
    ):
        res = client.get(path)
        assert res.status_code == 401, path
        assert res.json()["error"]["code"] == "unauthenticated"
    for path in ("/healthz", "/api/v1/healthz"):
        assert client.get(path).status_code == 200, path
    assert client.get("/").status_code == 200 and client.get("/login").status_code == 200
    add_account(services, "u-officer", "officer")
    login(client, "u-officer")
    for path in OPERATIONS:
        assert client.get(path).status_code == 200, path
    assert "/api/v1/trips" in client.get("/openapi.json").json()["paths"]
    assert "swagger-ui" in client.get("/docs").text and "redoc" in client.get("/redoc").text


def test_operations_on_a_listener_of_their_own(services):
    """With `http.operations_listener`, the operations endpoints leave the main listener
    and are served on theirs without an account (a management network)."""
    http = HttpSettings(operations_listener=OperationsListener(port=0))
    svc = dataclasses.replace(services, config=services.config.model_copy(update={"http": http}))
    api = create_app(svc)
    add_account(services, "u-officer", "officer")
    with TestClient(api) as main, TestClient(operations_app(api, svc)) as operations:
        login(main, "u-officer")
        for path in OPERATIONS:
            if path.startswith("/api/v1/"):
                assert main.get(path).status_code == 200, path  # the REST API's own
                continue
            assert main.get(path).status_code == 404, path
            assert operations.get(path).status_code == 200, path
        assert "/api/v1/trips" in operations.get("/openapi.json").json()["paths"]
        assert operations.get("/api/v1/trips").status_code == 404  # nothing else there


def test_prometheus_scrapes_metrics_with_an_integration_token(make_client, services):
    add_account(services, "admin", "admin")
    add_account(services, "prometheus", "integration", password=None)
    admin = make_client()
    login(admin, "admin")
    token = admin.post("/api/v1/users/prometheus/tokens", json={"name": "scrape"}).json()["token"]
    scraper = make_client()
    assert scraper.get("/metrics").status_code == 401
    res = scraper.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert res.status_code == 200 and res.headers["content-type"].startswith("text/plain")


@pytest.mark.parametrize(
    ("role", "declare", "users"),
    [("officer", 403, 403), ("supervisor", 201, 403), ("admin", 403, 200)],
)
def test_role_rights(make_client, services, role, declare, users):
    add_account(services, f"u-{role}", role)
    client = make_client()
    login(client, f"u-{role}")
    assert client.get("/api/v1/trips").status_code == 200
    assert client.get("/api/v1/console/config").status_code == 200
    res = client.post("/api/v1/declarations", json=declaration())
    assert res.status_code == declare, res.text
    if declare == 403:
        assert res.json()["error"]["code"] == "forbidden"
        assert role in res.json()["error"]["message"]
    assert client.get("/api/v1/users").status_code == users


def test_policy_table():
    assert roles_for("GET", "/api/v1/healthz") is None
    assert roles_for("GET", "/api/v1/trips/{trip_id}") == ()
    assert roles_for("POST", "/api/v1/declarations") == ("supervisor", "integration")
    assert roles_for("POST", "/api/v1/declarations/{declaration_id}/release") == (
        "supervisor",
        "integration",
    )
    assert roles_for("POST", "/api/v1/alarms/{alarm_id}/assign") == ("supervisor",)
    # An unlisted write is for officers (and supervisors), never for admins or integrations.
    assert roles_for("DELETE", "/api/v1/alarms/{id}") == ("officer",)


def test_admin_manages_accounts(make_client, services):
    add_account(services, "admin1", "admin")
    admin = make_client()
    login(admin, "admin1")
    res = admin.post(
        "/api/v1/users",
        json={"username": "he.officer", "display_name": "何警官", "role": "officer",
              "password": "a good password"},
    )  # fmt: skip
    assert res.status_code == 201, res.text
    assert res.json()["display_name"] == "何警官" and "a good password" not in res.text
    dup = admin.post(
        "/api/v1/users",
        json={"username": "he.officer", "display_name": "x", "role": "officer",
              "password": "a good password"},
    )  # fmt: skip
    assert dup.status_code == 409
    weak = admin.post(
        "/api/v1/users",
        json={"username": "weak", "display_name": "w", "role": "officer", "password": "123"},
    )
    assert weak.status_code == 422 and weak.json()["error"]["field"] == "password"
    integration_pw = admin.post(
        "/api/v1/users",
        json={"username": "decl", "display_name": "d", "role": "integration",
              "password": "a good password"},
    )  # fmt: skip
    assert integration_pw.status_code == 422
    officer = make_client()
    login(officer, "he.officer", "a good password")
    # Promotion ends the officer's session; disabling blocks login.
    res = admin.patch("/api/v1/users/he.officer", json={"role": "supervisor"})
    assert res.status_code == 200 and res.json()["role"] == "supervisor"
    assert officer.get("/api/v1/auth/me").status_code == 401
    assert admin.patch("/api/v1/users/he.officer", json={"disabled": True}).status_code == 200
    res = officer.post(
        "/api/v1/auth/login", json={"username": "he.officer", "password": "a good password"}
    )
    assert res.status_code == 401
    # The last admin cannot remove their own power.
    res = admin.patch("/api/v1/users/admin1", json={"role": "officer"})
    assert res.status_code == 409 and "last active admin" in res.json()["error"]["message"]
    names = [u["username"] for u in admin.get("/api/v1/users").json()]
    assert names == ["admin1", "he.officer"]


def test_integration_token_lifecycle(make_client, services):
    add_account(services, "admin1", "admin")
    add_account(services, "decl-system", "integration", password=None)
    add_account(services, "li", "officer")
    admin = make_client()
    login(admin, "admin1")
    res = admin.post("/api/v1/users/decl-system/tokens", json={"name": "declaration system"})
    assert res.status_code == 201, res.text
    token = res.json()["token"]
    token_id = res.json()["token_id"]
    assert token.startswith(f"bwt_{token_id}_") and res.json()["expires_at"]
    assert admin.post("/api/v1/users/li/tokens", json={"name": "x"}).status_code == 422
    too_long = admin.post(
        "/api/v1/users/decl-system/tokens", json={"name": "x", "expires_days": 4000}
    )
    assert too_long.status_code == 422
    listed = admin.get("/api/v1/users/decl-system/tokens").json()
    assert [t["token_id"] for t in listed] == [token_id] and "token" not in listed[0]
    with services.store.engine.connect() as conn:
        stored = conn.execute(select(schema.api_tokens.c.token_hash)).scalar_one()
    assert token not in stored

    bot = make_client()  # no cookie, no CSRF token: Bearer only
    auth = {"Authorization": f"Bearer {token}"}
    res = bot.post("/api/v1/declarations", json=declaration(), headers=auth)
    assert res.status_code == 201, res.text
    assert bot.get("/api/v1/trips/D-0001", headers=auth).json()["vehicle_id"] == "TRK-1"
    assert bot.get("/api/v1/users", headers=auth).status_code == 403
    assert bot.get("/api/v1/auth/me", headers=auth).json()["via"] == "token"
    forged = {"Authorization": f"Bearer bwt_{token_id}_forged"}
    assert bot.get("/api/v1/trips", headers=forged).status_code == 401
    assert bot.get("/api/v1/trips", headers={"Authorization": "Basic abc"}).status_code == 401
    # An integration account cannot log in with a password.
    res = bot.post("/api/v1/auth/login", json={"username": "decl-system", "password": "anything"})
    assert res.status_code == 401

    assert admin.delete(f"/api/v1/users/decl-system/tokens/{token_id}").status_code == 204
    assert bot.get("/api/v1/trips", headers=auth).status_code == 401
    assert admin.delete("/api/v1/users/decl-system/tokens/nope").status_code == 404


def test_account_actions_go_into_the_audit_log(make_client, services):
    with services.store.engine.connect() as conn:
        start = conn.execute(text("SELECT coalesce(max(seq), 0) FROM audit_log")).scalar_one()
    add_account(services, "admin1", "admin")
    client = make_client()
    client.post("/api/v1/auth/login", json={"username": "admin1", "password": "wrong!"})
    login(client, "admin1")
    client.post(
        "/api/v1/users",
        json={"username": "ma", "display_name": "马", "role": "officer",
              "password": "a good password"},
    )  # fmt: skip
    client.post("/api/v1/auth/logout")
    with services.store.engine.connect() as conn:
        seen = conn.execute(
            text(
                "SELECT actor, action, object_id, details FROM audit_log "
                "WHERE seq > :s ORDER BY seq"
            ),
            {"s": start},
        ).all()
    assert verify(services.store.engine).ok
    actions = [(a[0], a[1], a[2]) for a in seen]
    assert actions[0] == ("test", "user.create", "admin1")
    assert actions[1] == ("admin1", "auth.login_failed", "admin1")
    assert actions[2][:2] == ("admin1", "auth.login")
    assert actions[3] == ("admin1", "user.create", "ma")
    assert actions[4][:2] == ("admin1", "auth.logout")
    assert json.loads(seen[3][3]) == {"role": "officer", "display_name": "马"}
    assert "password" not in repr(seen)


def test_create_admin_command(tmp_path, monkeypatch, capsys):
    db = tmp_path / "bw.db"
    config = tmp_path / "server.yaml"
    config.write_text(f"storage:\n  url: sqlite:///{db}\n", encoding="utf-8")
    monkeypatch.setattr("sys.stdin", io.StringIO("the first admin pw\n"))
    argv = ["user", "create-admin", "--config", str(config), "--username", "chief"]
    assert server_main(argv) == 0
    assert "admin chief created" in capsys.readouterr().out
    pw_file = tmp_path / "pw"
    pw_file.write_text("another admin pw\n", encoding="utf-8")
    assert server_main([*argv[:-1], "second", "--password-file", str(pw_file)]) == 1
    assert "an active admin exists already" in capsys.readouterr().err
    store = Store.open(f"sqlite:///{db}")
    try:
        with store.engine.connect() as conn:
            rows = conn.execute(select(schema.accounts.c.username, schema.accounts.c.role)).all()
        assert [tuple(r) for r in rows] == [("chief", "admin")]
        from server.auth.accounts import AccountStore, LoginOk
        from server.auth.config import AuthSettings

        result = AccountStore(store.engine, AuthSettings()).login(
            "chief", "the first admin pw", __import__("contract.ids").ids.utc_now()
        )
        assert isinstance(result, LoginOk)
    finally:
        store.close()


def test_create_admin_refuses_a_weak_password(tmp_path, monkeypatch, capsys):
    config = tmp_path / "server.yaml"
    config.write_text(f"storage:\n  url: sqlite:///{tmp_path / 'bw.db'}\n", encoding="utf-8")
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    argv = ["user", "create-admin", "--config", str(config), "--username", "chief"]
    assert server_main(argv) == 1
    assert "at least 10 characters" in capsys.readouterr().err
    assert PASSWORD  # the shared test password is long enough for the other tests

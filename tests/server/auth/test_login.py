"""Login, sessions, cookies, CSRF and the login rate limits, through the real REST API."""

from __future__ import annotations

import json
import statistics
import time
from datetime import datetime, timedelta

from sqlalchemy import select

from contract.ids import utc_now
from server.auth.accounts import AccountStore, LoginOk
from server.auth.config import AuthSettings
from server.auth.ratelimit import ClientLimiter, lockout_for
from server.store import schema
from tests.server.auth.session import PASSWORD, add_account, login
from tests.server.conftest import declaration

UNKNOWN_ANSWER = {"error": {"code": "bad_credentials", "message": "wrong username or password"}}


def test_login_sets_a_strict_httponly_cookie_and_me_answers(make_client, services):
    add_account(services, "officer.one", "officer")
    client = make_client()
    res = client.post("/api/v1/auth/login", json={"username": "officer.one", "password": PASSWORD})
    assert res.status_code == 200, res.text
    body = res.json()
    assert body["account"]["role"] == "officer" and body["via"] == "session"
    assert len(body["csrf_token"]) >= 24 and body["session_idle_s"] == 30 * 60
    cookie = res.headers["set-cookie"]
    assert cookie.startswith("bw_session=")
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie  # plain-HTTP test client with cookie_secure=auto
    me = client.get("/api/v1/auth/me").json()
    assert me["account"]["username"] == "officer.one" and me["csrf_token"] == body["csrf_token"]
    # The store keeps only digests and argon2id hashes.
    with services.store.engine.connect() as conn:
        stored = conn.execute(select(schema.accounts.c.password_hash)).scalar_one()
        session_hash = conn.execute(select(schema.auth_sessions.c.token_hash)).scalar_one()
    assert stored.startswith("$argon2id$") and PASSWORD not in stored
    assert session_hash not in cookie and len(session_hash) == 64


def test_secure_cookie_when_configured(make_client, services):
    add_account(services, "wang", "officer")
    res = make_client(cookie_secure="always").post(
        "/api/v1/auth/login", json={"username": "wang", "password": PASSWORD}
    )
    assert res.status_code == 200 and "Secure" in res.headers["set-cookie"]


def test_wrong_password_and_unknown_user_look_the_same(make_client, services):
    add_account(services, "zhao", "officer")
    client = make_client()
    for name in ("zhao", "nobody"):
        res = client.post("/api/v1/auth/login", json={"username": name, "password": "wrong-pass"})
        assert res.status_code == 401
        assert res.json()["error"] == {
            "code": "bad_credentials",
            "message": "wrong username or password",
        }
        assert "set-cookie" not in res.headers
    assert client.get("/api/v1/auth/me").status_code == 401


def test_account_locked_after_threshold_then_unlocked_by_admin(make_client, services):
    add_account(services, "chen", "officer")
    add_account(services, "root-admin", "admin")
    client = make_client(lockout_threshold=3, lockout_base_s=60)
    bad = {"username": "chen", "password": "not-the-password"}
    assert [client.post("/api/v1/auth/login", json=bad).status_code for _ in range(2)] == [401] * 2
    # The third failure locks the account; the answer is an unknown account's.
    locked = client.post("/api/v1/auth/login", json=bad)
    assert (locked.status_code, locked.json()) == (401, UNKNOWN_ANSWER)
    # Even the right password is refused while locked, with the same answer.
    good = {"username": "chen", "password": PASSWORD}
    refused = client.post("/api/v1/auth/login", json=good)
    assert (refused.status_code, refused.json()) == (401, UNKNOWN_ANSWER)
    assert "set-cookie" not in refused.headers and "retry-after" not in refused.headers
    admin = make_client(lockout_threshold=3, lockout_base_s=60)
    login(admin, "root-admin")
    until = admin.get("/api/v1/users/chen").json()["locked_until"]
    assert until is not None
    left = datetime.fromisoformat(until.replace("Z", "+00:00")) - utc_now()
    assert 55 <= left.total_seconds() <= 60
    assert admin.patch("/api/v1/users/chen", json={"unlock": True}).status_code == 200
    assert client.post("/api/v1/auth/login", json=good).status_code == 200


def test_a_locked_account_answers_as_an_unknown_one_in_as_long(make_client, services):
    """Status, body, headers and time: nothing tells a locked account from a missing one."""
    add_account(services, "lin", "officer")
    client = make_client(lockout_threshold=1, lockout_base_s=600, client_max_failures=1000)
    first = client.post("/api/v1/auth/login", json={"username": "lin", "password": "bad-1"})
    assert first.status_code == 401  # locked from now on

    def attempt(username: str, password: str) -> tuple[float, int, object, set[str]]:
        started = time.perf_counter()
        res = client.post("/api/v1/auth/login", json={"username": username, "password": password})
        elapsed = time.perf_counter() - started
        return elapsed, res.status_code, res.json(), set(res.headers) - {"date"}

    timings: dict[str, list[float]] = {"locked": [], "unknown": []}
    answers = set()
    for round_ in range(7):
        for kind, username, password in (
            ("locked", "lin", PASSWORD),
            ("unknown", f"nobody-{round_}", PASSWORD),
        ):
            elapsed, status, body, headers = attempt(username, password)
            timings[kind].append(elapsed)
            answers.add((status, json.dumps(body, sort_keys=True), frozenset(headers)))
    assert len(answers) == 1, answers
    assert next(iter(answers))[0] == 401
    locked, unknown = (statistics.median(timings[k]) for k in ("locked", "unknown"))
    # Both spend one argon2id check (tens of milliseconds); a locked account answered
    # without one would be ten times faster.
    assert 0.5 < locked / unknown < 2.0, (locked, unknown)


def test_lockout_backoff_doubles_up_to_the_cap():
    waits = [lockout_for(n, 5, 30, 900) for n in range(4, 12)]
    assert waits[0] is None
    assert [w.total_seconds() for w in waits[1:] if w] == [30, 60, 120, 240, 480, 900, 900]


def test_client_address_limited_across_usernames(make_client, services):
    add_account(services, "sun", "officer")
    client = make_client(client_max_failures=4, client_window_s=300)
    codes = [
        client.post(
            "/api/v1/auth/login", json={"username": f"guess{i}", "password": "x"}
        ).status_code
        for i in range(5)
    ]
    assert codes == [401, 401, 401, 401, 429]
    # The address waits, whatever account it tries.
    res = client.post("/api/v1/auth/login", json={"username": "sun", "password": PASSWORD})
    assert res.status_code == 429 and int(res.headers["retry-after"]) > 0


def test_client_limiter_window_slides():
    limiter = ClientLimiter(max_failures=2, window_s=10)
    t0 = utc_now()
    limiter.failed("10.0.0.1", t0)
    limiter.failed("10.0.0.1", t0 + timedelta(seconds=1))
    assert limiter.retry_after("10.0.0.1", t0 + timedelta(seconds=2)) == 8.0
    assert limiter.retry_after("10.0.0.2", t0) is None
    assert limiter.retry_after("10.0.0.1", t0 + timedelta(seconds=10.5)) is None


def test_login_from_another_sites_page_is_refused(make_client, services):
    add_account(services, "zhou", "officer")
    res = make_client().post(
        "/api/v1/auth/login",
        json={"username": "zhou", "password": PASSWORD},
        headers={"Origin": "https://evil.example"},
    )
    assert res.status_code == 403 and res.json()["error"]["code"] == "csrf"


def test_csrf_token_required_for_cookie_writes(make_client, services):
    add_account(services, "boss", "supervisor")
    client = make_client()
    token = login(client, "boss")
    del client.headers["X-CSRF-Token"]
    res = client.post("/api/v1/declarations", json=declaration())
    assert res.status_code == 403 and res.json()["error"]["code"] == "csrf"
    res = client.post(
        "/api/v1/declarations", json=declaration(), headers={"X-CSRF-Token": token[:-1] + "?"}
    )
    assert res.status_code == 403
    assert client.post("/api/v1/auth/logout").status_code == 403
    assert client.get("/api/v1/trips").json() == []  # nothing was registered
    res = client.post("/api/v1/declarations", json=declaration(), headers={"X-CSRF-Token": token})
    assert res.status_code == 201, res.text


def test_logout_ends_the_session(make_client, services):
    add_account(services, "wu", "officer")
    client = make_client()
    login(client, "wu")
    cookie = client.cookies.get("bw_session")
    res = client.post("/api/v1/auth/logout")
    assert res.status_code == 204 and 'bw_session=""' in res.headers["set-cookie"]
    # The old cookie is dead even when replayed.
    replay = make_client()
    replay.cookies.set("bw_session", cookie)
    assert replay.get("/api/v1/trips").status_code == 401


def test_sessions_expire_when_idle_and_absolutely(services):
    add_account(services, "zheng", "officer")
    store = AccountStore(
        services.store.engine, AuthSettings(session_idle_min=10, session_absolute_h=1)
    )
    t0 = utc_now()
    ok = store.login("zheng", PASSWORD, t0)
    assert isinstance(ok, LoginOk)
    secret = ok.session_secret
    # Active every 9 minutes: alive until the absolute limit.
    for minutes in range(9, 60, 9):
        assert store.session_account(secret, t0 + timedelta(minutes=minutes)) is not None
    assert store.session_account(secret, t0 + timedelta(minutes=61)) is None
    again = store.login("zheng", PASSWORD, t0)
    assert isinstance(again, LoginOk)
    secret = again.session_secret
    assert store.session_account(secret, t0 + timedelta(minutes=5)) is not None
    assert store.session_account(secret, t0 + timedelta(minutes=15, seconds=1)) is None
    # Once ended, it stays ended.
    assert store.session_account(secret, t0 + timedelta(minutes=6)) is None


def test_own_password_change_ends_other_sessions(make_client, services):
    add_account(services, "feng", "officer")
    first, second = make_client(), make_client()
    login(first, "feng")
    login(second, "feng")
    res = first.post(
        "/api/v1/auth/password",
        json={"current_password": "wrong", "new_password": "another good one"},
    )
    assert res.status_code == 403
    res = first.post(
        "/api/v1/auth/password",
        json={"current_password": PASSWORD, "new_password": "short"},
    )
    assert res.status_code == 422 and res.json()["error"]["field"] == "new_password"
    res = first.post(
        "/api/v1/auth/password",
        json={"current_password": PASSWORD, "new_password": "another good one"},
    )
    assert res.status_code == 204
    assert first.get("/api/v1/auth/me").status_code == 200
    assert second.get("/api/v1/auth/me").status_code == 401
    login(make_client(), "feng", "another good one")

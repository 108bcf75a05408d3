"""Log a TestClient in as a real account (cookie + CSRF header), for any API test."""

from __future__ import annotations

from fastapi.testclient import TestClient

from contract.ids import utc_now
from server.auth.accounts import AccountStore
from server.auth.config import AuthSettings
from server.auth.roles import Role
from server.services import Services

PASSWORD = "correct horse battery"


def add_account(
    services: Services, username: str, role: Role, password: str | None = PASSWORD
) -> None:
    accounts = AccountStore(services.store.engine, AuthSettings())
    accounts.create("test", username, username.title(), role, password, utc_now())


def login(client: TestClient, username: str, password: str = PASSWORD) -> str:
    """Log in; the client keeps the cookie and sends the CSRF token from now on."""
    res = client.post("/api/v1/auth/login", json={"username": username, "password": password})
    assert res.status_code == 200, res.text
    token: str = res.json()["csrf_token"]
    client.headers["X-CSRF-Token"] = token
    return token


def login_as(client: TestClient, services: Services, role: Role = "supervisor") -> str:
    username = f"test-{role}"
    add_account(services, username, role)
    return login(client, username)

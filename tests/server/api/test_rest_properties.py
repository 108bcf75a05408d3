"""Property tests of every REST endpoint against the served OpenAPI document (schemathesis).

The app is the server's own (`create_app` over SQLite with the demo geography and a
signing gate service); requests go to it in-process (ASGI). For each caller — an admin,
a supervisor and an officer with their console sessions (cookie + CSRF token), and an
integration account's API token — requests generated from the OpenAPI document, valid
and invalid, must:

- never be answered with a 5xx;
- answer every error in the contract's shape `{"error": {"code", "message", "field"?}}`;
- answer what the document says (status codes documented, bodies matching their schema);
- and invalid ones (schemathesis' negative mode) must change nothing: every table of the
  store, the audit chain first, is the same after a run of them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import response_schema_conformance
from sqlalchemy import MetaData, select

from contract.ids import utc_now
from server.app import create_app
from server.auth.accounts import AccountStore
from server.auth.config import AuthSettings
from server.services import Services
from tests.server.assembled import assemble, server_config
from tests.server.auth.session import add_account, login
from tests.server.conftest import declaration

pytestmark = pytest.mark.slow

#: Requests per caller and mode; all operations share them (about 10 each).
EXAMPLES = 150
#: Operations left out: logging out ends the very session the run uses.
SKIPPED = {("POST", "/api/v1/auth/logout")}
#: Tables whose rows a request may touch without changing anything of record: a session's
#: last-seen time, a token's last use, a failed login's counters.
VOLATILE = {"auth_sessions", "api_tokens", "accounts"}
ROLES = ("admin", "supervisor", "officer", "integration")


@dataclass
class Rest:
    app: FastAPI
    services: Services
    #: headers that authenticate each caller
    headers: dict[str, dict[str, str]]
    schema: Any


@pytest.fixture(scope="module")
def rest(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rest]:
    folder = tmp_path_factory.mktemp("rest")
    services, _ = assemble(server_config(folder))
    # No login lockouts or per-address limits during the run: failed logins are expected.
    auth = AuthSettings(lockout_threshold=100, client_max_failures=10_000)
    app = create_app(services, auth=auth)
    headers: dict[str, dict[str, str]] = {}
    with TestClient(app) as client:
        for role in ("admin", "supervisor", "officer"):
            username = f"prop-{role}"
            add_account(services, username, role)
            csrf = login(client, username)
            cookie = "; ".join(f"{k}={v}" for k, v in client.cookies.items())
            headers[role] = {"Cookie": cookie, "X-CSRF-Token": csrf}
            client.cookies.clear()
            del client.headers["X-CSRF-Token"]
        add_account(services, "prop-integration", "integration", password=None)
        token, _ = AccountStore(services.store.engine, auth).issue_token(
            "test", "prop-integration", "properties", utc_now() + timedelta(days=1), utc_now()
        )
        headers["integration"] = {"Authorization": f"Bearer {token}"}
        # Something to find: a trip (so that ids in paths sometimes exist).
        res = client.post("/api/v1/declarations", json=declaration(), headers=headers["admin"])
        assert res.status_code in (201, 403), res.text
        res = client.post(
            "/api/v1/declarations", json=declaration(), headers=headers["integration"]
        )
        assert res.status_code == 201, res.text
    # The document as served (it may need a signed-in caller).
    schema = schemathesis.openapi.from_asgi("/openapi.json", app, headers=headers["admin"])
    try:
        yield Rest(app, services, headers, schema)
    finally:
        services.store.close()


def operations(rest: Rest) -> list[Any]:
    found = []
    for result in rest.schema.get_all_operations():
        operation = result.ok()
        if (operation.method.upper(), operation.path) not in SKIPPED:
            found.append(operation)
    assert len(found) > 20
    return found


def assert_error_shape(status: int, body: Any, where: str) -> None:
    assert isinstance(body, dict) and set(body) == {"error"}, (where, status, body)
    error = body["error"]
    assert isinstance(error, dict), (where, body)
    assert set(error) <= {"code", "message", "field"} and {"code", "message"} <= set(error)
    assert isinstance(error["code"], str) and error["code"], (where, body)
    assert isinstance(error["message"], str) and error["message"], (where, body)
    assert error.get("field") is None or isinstance(error["field"], str), (where, body)


def check(case: Any, response: Any) -> None:
    where = f"{case.method} {case.formatted_path} {case.query} {case.body!r:.300}"
    status = response.status_code
    assert status < 500, (where, status, response.text[:500])
    if status >= 400 and status != 405:
        assert_error_shape(status, response.json(), where)
    # The body fits the document's schema for that status (errors included).
    case.validate_response(response, checks=[response_schema_conformance])


def fingerprint(services: Services) -> dict[str, str]:
    """A digest of every table of record (the audit chain among them), row by row."""
    meta = MetaData()
    meta.reflect(services.store.engine)
    out = {}
    with services.store.engine.connect() as conn:
        for name, table in sorted(meta.tables.items()):
            if name in VOLATILE:
                continue
            digest = hashlib.sha256()
            order = list(table.primary_key.columns) or list(table.columns)
            for row in conn.execute(select(table).order_by(*order)):
                digest.update(repr(tuple(row)).encode())
            out[name] = digest.hexdigest()
    return out


def run_role(rest: Rest, role: str, mode: GenerationMode) -> int:
    strategy = st.one_of(*(op.as_strategy(generation_mode=mode) for op in operations(rest)))
    headers = rest.headers[role]
    calls = [0]

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def property_of(case: Any) -> None:
        response = case.call(headers=headers)
        calls[0] += 1
        check(case, response)

    property_of()
    return calls[0]


@pytest.mark.parametrize("role", ROLES)
def test_valid_requests_of_every_role_get_documented_answers(rest: Rest, role: str) -> None:
    assert run_role(rest, role, GenerationMode.POSITIVE) >= EXAMPLES // 2


@pytest.mark.parametrize("role", ROLES)
def test_invalid_requests_are_refused_in_shape_and_change_nothing(rest: Rest, role: str) -> None:
    before = fingerprint(rest.services)
    assert "audit_log" in before
    assert run_role(rest, role, GenerationMode.NEGATIVE) >= EXAMPLES // 2
    assert fingerprint(rest.services) == before


def test_the_document_names_the_error_shape_for_refusals(rest: Rest) -> None:
    """422 (and the other refusals) are documented as the contract's error, not FastAPI's
    `HTTPValidationError` that this server never sends."""
    with TestClient(rest.app) as client:
        document = client.get("/openapi.json", headers=rest.headers["admin"]).json()
    components = document["components"]["schemas"]
    assert "HTTPValidationError" not in components
    body = document["paths"]["/api/v1/declarations"]["post"]["responses"]["422"]
    ref = body["content"]["application/json"]["schema"]["$ref"]
    assert ref == "#/components/schemas/ErrorBody"
    assert set(components["ErrorBody"]["properties"]) == {"error"}


def test_unauthenticated_requests_are_refused_in_shape(rest: Rest) -> None:
    with TestClient(rest.app) as client:
        for path in ("/api/v1/trips", "/api/v1/alarms", "/api/v1/users", "/api/v1/audit"):
            res = client.get(path)
            assert res.status_code == 401, (path, res.text)
            assert_error_shape(401, res.json(), path)
        res = client.post("/api/v1/declarations", json=declaration(), headers={"Cookie": "x=y"})
        assert res.status_code == 401
        assert_error_shape(401, res.json(), "declarations")

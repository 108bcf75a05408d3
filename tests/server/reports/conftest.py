"""A server over SQLite or PostgreSQL (`store_url`) with a signing GateService and the
fleet's lock secrets, accounts of every role, and a geography whose route R-HP-BY has a
name that needs CSV quoting."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from contract.ids import utc_now
from server.app import create_app
from server.auth.accounts import AccountStore
from server.auth.config import AuthSettings
from server.auth.roles import Role
from server.config import GeographySettings, StorageSettings
from server.services import Services
from tests.server.assembled import assemble, server_config
from tests.server.auth.session import add_account, login
from tests.server.conftest import DEMO
from tests.server.reports.fleet import FLEET_LOCK_SECRETS, Fleet

#: R-HP-BY's name in these tests: a comma, quotes and Chinese, as a CSV must carry them.
QUOTED_NAME = '黄埔新港 → 白云, "综保区"'
ACCOUNTS: dict[Role, str] = {
    "officer": "officer.one",
    "supervisor": "supervisor.one",
    "admin": "it.admin",
}


def geography(folder: Path) -> GeographySettings:
    """The demo geography, R-HP-BY renamed to QUOTED_NAME."""
    routes = []
    for source in sorted((DEMO / "routes").glob("*.geojson")):
        data = json.loads(source.read_text(encoding="utf-8"))
        for feature in data["features"]:
            if feature["properties"].get("route_id") == "R-HP-BY":
                feature["properties"]["name"] = QUOTED_NAME
        target = folder / source.name
        target.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
        routes.append(target)
    return GeographySettings(routes=routes, zones=[DEMO / "zones.geojson"])


@dataclass
class ReportWorld:
    services: Services
    fleet: Fleet
    app: object
    clients: list[TestClient] = field(default_factory=list)
    accounts: set[str] = field(default_factory=set)

    def client(self, role: Role | None = "supervisor") -> TestClient:
        """A new client logged in with the role's account (None: not logged in)."""
        client = TestClient(self.app)  # type: ignore[arg-type]
        client.__enter__()
        self.clients.append(client)
        if role is not None:
            if role not in self.accounts:  # hashing a password takes a while: only if used
                add_account(self.services, ACCOUNTS[role], role)
                self.accounts.add(role)
            login(client, ACCOUNTS[role])
        return client

    def integration_token(self) -> str:
        """An API token of a new integration account (the declaration system)."""
        add_account(self.services, "decl-system", "integration", password=None)
        accounts = AccountStore(self.services.store.engine, AuthSettings())
        token, _ = accounts.issue_token(
            "test", "decl-system", "reports test", utc_now() + timedelta(days=1), utc_now()
        )
        return token


@pytest.fixture
def world(store_url: str, tmp_path: Path) -> Iterator[ReportWorld]:
    (tmp_path / "routes").mkdir()
    config = server_config(
        tmp_path,
        FLEET_LOCK_SECRETS,
        storage=StorageSettings(url=store_url),
        geography=geography(tmp_path / "routes"),
    )
    svc, _ = assemble(config)
    made = ReportWorld(svc, Fleet(svc, svc.gates), create_app(svc))
    try:
        yield made
    finally:
        for client in made.clients:
            client.__exit__(None, None, None)
        svc.store.close()

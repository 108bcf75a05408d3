from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from server.app import create_app
from server.config import ServerConfig, StorageSettings
from server.services import Services
from tests.server.assembled import DEMO, assemble, demo_geography
from tests.server.auth.session import login_as

__all__ = ["DEMO", "demo_geography"]  # where the tests have found them


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    """The server's components over SQLite in `tmp_path` and the demo geography (no
    signing key, no lock secrets)."""
    config = ServerConfig(
        storage=StorageSettings(url=f"sqlite:///{tmp_path / 'store.db'}"),
        geography=demo_geography(),
    )
    svc, _ = assemble(config)
    yield svc
    svc.store.close()


@pytest.fixture
def api(services: Services) -> Iterator[TestClient]:
    with TestClient(create_app(services)) as client:
        login_as(client, services, "supervisor")  # the API needs an account (server.auth)
        yield client


def declaration(**over: object) -> dict[str, object]:
    body: dict[str, object] = {
        "declaration_id": "D-0001",
        "enterprise": {"code": "4401960001", "name": "示范供应链", "credit": "advanced"},
        "vehicle_id": "TRK-1",
        "plate": "粤A·D3K21",
        "lock_ids": ["EL-1"],
        "containers": ["CSQU3054383"],
        "origin_gate": "G-HUANGPU-1",
        "destination_gate": "G-BAIYUN-1",
        "route_id": "R-HP-BY",
        "time_limit_min": 120,
    }
    body.update(over)
    return body

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient

from server.app import create_app
from server.auth.config import AuthSettings
from server.services import Services

MakeClient = Callable[..., TestClient]


@pytest.fixture
def make_client(services: Services) -> Iterator[MakeClient]:
    """New TestClients (each its own cookie jar) on one app with the given auth settings."""
    clients: list[TestClient] = []
    apps: dict[str, object] = {}

    def make(**settings: object) -> TestClient:
        key = repr(sorted(settings.items()))
        if key not in apps:
            apps[key] = create_app(services, auth=AuthSettings.model_validate(settings))
        client = TestClient(apps[key])  # type: ignore[arg-type]
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from server.alarms import AlarmService
from server.store import Store

T0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    s = Store.open(store_url)
    yield s
    s.close()


@pytest.fixture
def alarms(store: Store) -> AlarmService:
    return AlarmService(store.engine)

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from server.audit import append, write_transaction
from server.store import Store

T0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    s = Store.open(store_url)
    yield s
    s.close()


def fill(store: Store, n: int) -> None:
    """n entries by a few actors, one transaction each."""
    for i in range(n):
        with write_transaction(store.engine) as conn:
            append(
                conn,
                f"officer.{i % 3}",
                "alarm.ack" if i % 2 else "declaration.create",
                "alarm" if i % 2 else "declaration",
                f"OBJ-{i}",
                {"comment": f"entry {i + 1}", "n": i, "nested": {"ok": True, "f": 0.5}},
                T0 + timedelta(minutes=i),
            )

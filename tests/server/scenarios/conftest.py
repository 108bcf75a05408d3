"""One server and one broker per test module: starting them costs seconds, a scenario
costs less. Each scenario uses its own trucks, declarations and gate passages."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devtools.broker import INSTALL_HINT, MosquittoBroker, find_mosquitto
from tests.server.scenarios.harness import World


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """A `bondwatch-server` process on the demo geography and its own Mosquitto (no
    retained messages of other tests)."""
    if find_mosquitto() is None:
        pytest.fail(INSTALL_HINT)
    root = tmp_path_factory.mktemp("scenario")
    with MosquittoBroker(root / "mosquitto") as broker:
        running = World(root, broker)
        try:
            yield running.start()
        finally:
            running.stop()

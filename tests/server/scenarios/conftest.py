"""One server and one broker per test module: starting them costs seconds, a scenario
costs less. Each scenario uses its own trucks, declarations and gate passages."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest

from devtools.broker import INSTALL_HINT, MosquittoBroker, find_mosquitto
from tests.server.scenarios.harness import World


@contextlib.contextmanager
def running_world(
    tmp_path_factory: pytest.TempPathFactory, name: str, **options: Any
) -> Iterator[World]:
    """A `bondwatch-server` process on the demo geography and its own Mosquitto (no
    retained messages of other tests); `options`: the `World`'s settings."""
    if find_mosquitto() is None:
        pytest.fail(INSTALL_HINT)
    root = tmp_path_factory.mktemp(name)
    with MosquittoBroker(root / "mosquitto") as broker:
        running = World(root, broker, **options)
        try:
            yield running.start()
        finally:
            running.stop()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with running_world(tmp_path_factory, "scenario") as running:
        yield running

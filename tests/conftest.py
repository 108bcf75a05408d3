"""Session-wide fixtures: a real Mosquitto broker on a free loopback port."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools.broker import INSTALL_HINT, MosquittoBroker, find_mosquitto, free_port
from devtools.postgres import TempPostgres, fresh_database
from tests.realdata import missing_outside_data, outside_data

PROJECT_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The photos read in place (tests marked `shared_data`, `make accuracy`); fails
    saying where they are expected."""
    where = outside_data()
    if not (where / "containers" / "labels.csv").is_file():
        pytest.fail(missing_outside_data(where))
    return where


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MosquittoBroker]:
    """A Mosquitto broker for the whole session, with the production settings."""
    if find_mosquitto() is None:
        pytest.fail(INSTALL_HINT)
    with MosquittoBroker(tmp_path_factory.mktemp("mosquitto")) as running:
        yield running


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[MosquittoBroker]:
    """A broker for one test, which the test may stop, kill and restart."""
    if find_mosquitto() is None:
        pytest.fail(INSTALL_HINT)
    running = MosquittoBroker(tmp_path / "mosquitto")
    running.start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """URL of a PostgreSQL server: BONDWATCH_TEST_POSTGRES_URL, or one started for the session."""
    named = os.environ.get("BONDWATCH_TEST_POSTGRES_URL")
    if named:
        yield named
        return
    try:
        server = TempPostgres(free_port())
        url = server.start()
    except (RuntimeError, OSError) as err:
        pytest.fail(str(err))
    try:
        yield url
    finally:
        server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The same storage tests run against SQLite and PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    return fresh_database(request.getfixturevalue("postgres_server"))

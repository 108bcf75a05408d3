"""One accuracy run per test session and data set: the rows are shared by the tests."""

import pytest

from devices.ocr.accuracy import ContainerRow, PlateRow, container_rows, plate_rows
from devices.ocr.reader import GateReader
from tests.realdata import REPO_DATA


@pytest.fixture(scope="session")
def reader() -> GateReader:
    return GateReader()


@pytest.fixture(scope="session")
def container_table(shared_data, reader) -> list[ContainerRow]:
    """Every labelled container photo, read in place (`make accuracy`)."""
    return container_rows(shared_data, reader)


@pytest.fixture(scope="session")
def plate_table(shared_data, reader) -> list[PlateRow]:
    return plate_rows(shared_data, reader)


@pytest.fixture(scope="session")
def repo_container_table(reader) -> list[ContainerRow]:
    """The container photos kept in the repository (tests/data/containers)."""
    return container_rows(REPO_DATA, reader)


@pytest.fixture(scope="session")
def repo_plate_table(reader) -> list[PlateRow]:
    return plate_rows(REPO_DATA, reader)

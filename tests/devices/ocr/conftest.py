"""One accuracy run per test session: the rows are shared by the accuracy tests."""

import pytest

from devices.ocr.accuracy import container_rows, plate_rows
from devices.ocr.reader import GateReader


@pytest.fixture(scope="session")
def reader():
    return GateReader()


@pytest.fixture(scope="session")
def container_table(shared_data, reader):
    return container_rows(shared_data, reader)


@pytest.fixture(scope="session")
def plate_table(shared_data, reader):
    return plate_rows(shared_data, reader)

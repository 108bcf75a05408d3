"""One reading per image per test session: the held-out, in-sample and synthetic figures
all judge the same readings (devices/ocr/accuracy.py)."""

import pytest

from devices.ocr.accuracy import (
    Reading,
    ReadingCache,
    Report,
    evaluate,
    read_photos,
    read_synthetic,
)
from devices.ocr.reader import GateReader
from tests.realdata import REPO_DATA


@pytest.fixture(scope="session")
def reader() -> GateReader:
    return GateReader()


@pytest.fixture(scope="session")
def reading_cache(reader) -> ReadingCache:
    return ReadingCache(reader)


def _photos(data_dir, cache: ReadingCache) -> list[Reading]:
    return read_photos(data_dir, "container", cache) + read_photos(data_dir, "plate", cache)


@pytest.fixture(scope="session")
def synthetic_readings(reading_cache) -> list[Reading]:
    """The camera stub's synthetic set (firmware_stubs/camera/synthetic.py)."""
    return read_synthetic(reading_cache)


@pytest.fixture(scope="session")
def shared_report(shared_data, reading_cache) -> Report:
    """Every labelled photo, read in place (`make accuracy`)."""
    return evaluate(_photos(shared_data, reading_cache), [])


@pytest.fixture(scope="session")
def repo_report(reading_cache, synthetic_readings) -> Report:
    """The photos kept in the repository (tests/data) and the synthetic set."""
    return evaluate(_photos(REPO_DATA, reading_cache), synthetic_readings)

from __future__ import annotations

import pytest

from server.geo import Geography
from tests.server.rules.trajectory import world


@pytest.fixture(scope="session")
def geo() -> Geography:
    return world()

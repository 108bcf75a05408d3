"""A real S3 HTTP endpoint on loopback (moto's server, a process of its own) for the
evidence tests."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from devtools.broker import free_port
from devtools.processes import Child


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`http://127.0.0.1:PORT` of an S3-compatible server (moto) for this test session."""
    port = free_port()
    logs: Path = tmp_path_factory.mktemp("s3")
    args = ["-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    child = Child("s3", [sys.executable, *args], logs).start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    try:
        while True:
            try:
                if httpx.get(url + "/", timeout=1).status_code < 500:
                    break
            except httpx.HTTPError:
                pass
            assert child.running and time.monotonic() < deadline, child.log_path.read_text()
            time.sleep(0.1)
        yield url
    finally:
        child.stop()

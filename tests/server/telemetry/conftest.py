"""A real VictoriaMetrics (Debian's `victoria-metrics`) as the InfluxDB v2 write endpoint."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

BINARY = "victoria-metrics"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Victoria:
    url: str
    process: subprocess.Popen[bytes]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def start_victoria(storage: Path, port: int | None = None) -> Victoria:
    binary = shutil.which(BINARY)
    if binary is None:
        pytest.fail(
            "VictoriaMetrics is needed for the telemetry tests: install Debian's package "
            "with `apt-get install -y victoria-metrics` (or `make telemetry-server` as root)"
        )
    port = port or free_port()
    process = subprocess.Popen(
        [
            binary,
            "-httpListenAddr",
            f"127.0.0.1:{port}",
            "-storageDataPath",
            str(storage),
            "-search.disableCache",  # fresh rows visible at once after /internal/force_flush
            "-loggerLevel",
            "ERROR",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"victoria-metrics exited with {process.returncode} on port {port}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=1) as res:
                if res.status == 200:
                    return Victoria(url, process)
        except OSError:
            time.sleep(0.05)
    process.kill()
    pytest.fail("victoria-metrics did not answer /health within 20 s")


@pytest.fixture
def victoria(tmp_path: Path) -> Iterator[Victoria]:
    vm = start_victoria(tmp_path / "vm")
    yield vm
    vm.stop()

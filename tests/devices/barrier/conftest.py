"""A running barrier stub (subprocess on a real pty) and a client for its control channel."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from devices.barrier.driver import ModbusBarrierConfig

PROJECT_ROOT = Path(__file__).resolve().parents[3]
CONTROL_TIMEOUT_S = 20.0


@dataclass
class BarrierStub:
    process: subprocess.Popen[str]
    path: str
    control_port: int

    async def control(self, line: str) -> dict[str, Any]:
        # Bounded: a stub that stops answering fails the test with this line, not a hang.
        async with asyncio.timeout(CONTROL_TIMEOUT_S):
            reader, writer = await asyncio.open_connection("127.0.0.1", self.control_port)
            try:
                writer.write(line.encode() + b"\n")
                await writer.drain()
                reply = (await reader.readline()).decode().strip()
            finally:
                writer.close()
        assert reply.startswith("OK "), reply
        state: dict[str, Any] = json.loads(reply[3:])
        return state

    def config(self, **overrides: Any) -> ModbusBarrierConfig:
        values: dict[str, Any] = {
            "type": "modbus_rtu",
            "port": self.path,
            "unit_id": 1,
            "poll_interval_s": 0.05,
            "response_timeout_s": 0.2,
            "retries": 1,
            "open_timeout_s": 3.0,
            "close_timeout_s": 3.0,
            "pulse_s": 0.1,
            "presence_debounce_s": 0.15,
            "down_after_failures": 3,
            "reconnect_max_s": 0.4,
        }
        values.update(overrides)
        return ModbusBarrierConfig.model_validate(values)


def start_stub(*args: str) -> BarrierStub:
    """Start the stub and read its three announcement lines (blocking, bounded by the stub)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "firmware_stubs.barrier", "--unit-id", "1", *args],
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    lines = [process.stdout.readline().strip() for _ in range(3)]
    path, ready, control = lines
    assert path.startswith("/dev/"), lines
    assert ready == "READY", lines
    assert control.startswith("CONTROL 127.0.0.1:"), lines
    return BarrierStub(process, path, int(control.rsplit(":", 1)[1]))


def stop_stub(stub: BarrierStub) -> None:
    stub.process.terminate()
    try:
        stub.process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        stub.process.kill()
        stub.process.wait()


@pytest.fixture
async def stub() -> AsyncIterator[BarrierStub]:
    """The stub with a quick arm (1 s travel) so that the suite stays fast."""
    running = start_stub("--travel-s", "1.0")
    try:
        yield running
    finally:
        stop_stub(running)

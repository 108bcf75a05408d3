"""A relay module that answers with the wrong kind of reply, at the real driver over a
pseudo-terminal: pymodbus checks the unit id and the CRC, the driver checks the rest — a
reply of another function, or of fewer inputs or registers than asked, is no reply; the
barrier's health never says `ok` on it, and an open it did not echo is not done."""

from __future__ import annotations

import asyncio
import contextlib
import os
import struct
import threading
import time
from collections.abc import AsyncIterator

import pytest
from pymodbus.framer import FramerRTU

from devices.barrier.driver import BarrierDriver, ModbusBarrierConfig
from firmware_stubs.pty import VirtualPort

UNIT = 1


def framed(body: bytes) -> bytes:
    return body + struct.pack(">H", FramerRTU.compute_CRC(body))


class Module(threading.Thread):
    """Answers each 8-byte request: honestly (a closed barrier, outputs enabled), or with
    `wrong[fc]`: "function" (a reply of another function), "empty" (no data)."""

    def __init__(self, port: VirtualPort, wrong: dict[int, str]) -> None:
        super().__init__(daemon=True)
        self.port, self.wrong = port, wrong
        self.stopped = False

    def run(self) -> None:
        buffer = b""
        while not self.stopped:
            try:
                buffer += os.read(self.port.master_fd, 256)
            except BlockingIOError:
                time.sleep(0.002)
                continue
            except OSError:
                return
            while len(buffer) >= 8:
                request, buffer = buffer[:8], buffer[8:]
                os.write(self.port.master_fd, framed(self.answer(request)))

    def answer(self, request: bytes) -> bytes:
        fc = request[1]
        how = self.wrong.get(fc)
        if how == "function":  # a discrete-inputs reply (or, to FC2, a coils reply)
            return bytes([UNIT, 1 if fc == 2 else 2, 1, 0b01000])
        if fc == 2:
            return bytes([UNIT, 2, 1, 0b01000])  # closed limit on
        if fc == 4:
            return bytes([UNIT, 4, 0]) if how == "empty" else bytes([UNIT, 4, 2, 0, 1])
        return request[:6]  # a coil write's echo


@contextlib.asynccontextmanager
async def module(wrong: dict[int, str]) -> AsyncIterator[tuple[BarrierDriver, list[str]]]:
    port = VirtualPort.open()
    fake = Module(port, wrong)
    fake.start()
    config = ModbusBarrierConfig(
        type="modbus_rtu",
        port=port.path,
        unit_id=UNIT,
        poll_interval_s=0.1,
        response_timeout_s=0.3,
        open_timeout_s=1.0,
        close_timeout_s=1.0,
    )
    driver = BarrierDriver(config)
    health: list[str] = []

    async def on_presence(_: bool) -> None:
        return None

    async def on_health(status: str, detail: str) -> None:
        health.append(f"{status}: {detail}")

    task = asyncio.create_task(driver.run(on_presence, on_health))
    try:
        yield driver, health
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        fake.stopped = True
        port.close()


async def settled(health: list[str], seconds: float = 1.2) -> list[str]:
    await asyncio.sleep(seconds)
    return health


async def test_an_honest_module_is_healthy() -> None:
    async with module({}) as (_, health):
        assert (await settled(health))[-1].startswith("ok")


@pytest.mark.parametrize(
    ("wrong", "said"),
    [
        ({2: "function"}, "module answered function 1, not 2"),
        ({4: "empty"}, "0 registers, not 1"),
        ({4: "function"}, "module answered function 2, not 4"),
    ],
)
async def test_a_reply_of_the_wrong_kind_is_no_reply(wrong: dict[int, str], said: str) -> None:
    async with module(wrong) as (_, health):
        seen = await settled(health)
        assert seen and not any(h.startswith("ok") for h in seen), seen
        assert said in seen[-1]


async def test_a_coil_write_answered_with_another_reply_is_not_done() -> None:
    async with module({5: "function"}) as (driver, _):
        await asyncio.sleep(0.5)
        result = await driver.open_barrier()
        assert not result.ok
        assert "module answered function 2, not 5" in (result.reason or "")

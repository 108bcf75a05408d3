"""The driver against the simulated relay module on a real pty (stub in a subprocess)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

import pytest

from devices.barrier.driver import BarrierDriver
from devices.errors import DeviceError
from tests.devices.barrier.conftest import BarrierStub, start_stub, stop_stub


class Events:
    """What `run` reported, with a way to wait for a condition on it."""

    def __init__(self) -> None:
        self.presence: list[bool] = []
        self.health: list[tuple[str, str]] = []
        self._changed = asyncio.Event()

    async def on_presence(self, occupied: bool) -> None:
        self.presence.append(occupied)
        self._changed.set()

    async def on_health(self, status: str, detail: str) -> None:
        self.health.append((status, detail))
        self._changed.set()

    async def until(self, what: Callable[[], bool], within: float = 8.0) -> None:
        async with asyncio.timeout(within):
            while not what():
                self._changed.clear()
                await self._changed.wait()

    @property
    def statuses(self) -> list[str]:
        return [status for status, _ in self.health]


@contextlib.asynccontextmanager
async def running(driver: BarrierDriver) -> AsyncIterator[Events]:
    events = Events()
    task = asyncio.create_task(driver.run(events.on_presence, events.on_health))
    try:
        yield events
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_presence_reported_on_arrival_and_departure(stub: BarrierStub) -> None:
    driver = BarrierDriver(stub.config())
    async with running(driver) as events:
        await events.until(lambda: events.presence == [False] and events.statuses == ["ok"])
        await stub.control("arrive")
        await events.until(lambda: events.presence == [False, True])
        # A blip shorter than the debounce time is no passage.
        await stub.control("leave")
        await stub.control("arrive")
        await asyncio.sleep(0.5)
        assert events.presence == [False, True]
        await stub.control("leave")
        await events.until(lambda: events.presence == [False, True, False])
        status = await driver.status()
        assert status.lane_occupied is False
    assert events.statuses == ["ok"]


async def test_open_reaches_open_then_close_reaches_closed(stub: BarrierStub) -> None:
    driver = BarrierDriver(stub.config())
    try:
        before = await driver.status()
        assert before.barrier == "closed"
        assert before.closed_limit
        assert not before.open_limit
        result = await driver.open_barrier()
        assert result.ok, result
        assert result.barrier == "open"
        assert 0.9 <= result.elapsed_s <= 3.0  # the arm takes its 1 s travel
        state = await stub.control("state")
        assert state["open_limit"] is True
        assert state["commands"] == ["open"]
        closed = await driver.close_barrier()
        assert closed.ok, closed
        assert closed.barrier == "closed"
        assert (await stub.control("state"))["commands"] == ["open", "close"]
    finally:
        driver.close()


async def test_jammed_barrier_fails_with_reason_and_is_commanded_closed(
    stub: BarrierStub,
) -> None:
    await stub.control("jam on")
    driver = BarrierDriver(stub.config(open_timeout_s=1.5))
    try:
        result = await driver.open_barrier()
        assert not result.ok
        assert result.action == "open"
        assert result.reason is not None
        assert "did not reach open within 1.5 s" in result.reason
        assert "commanded closed and is closed" in result.reason
        assert result.barrier == "closed"
        state = await stub.control("state")
        assert state["commands"] == ["open", "close"]
        assert state["closed_limit"] is True
        assert state["coils"][0] is False  # no relay left holding "open"
    finally:
        driver.close()


async def test_stuck_limit_switch_is_a_fault_and_open_is_refused(stub: BarrierStub) -> None:
    await stub.control("stuck open on")  # open limit reads active while the arm is down
    driver = BarrierDriver(stub.config())
    try:
        status = await driver.status()
        assert status.barrier == "fault"
        assert status.reason is not None
        assert "both limit switches" in status.reason
        result = await driver.open_barrier()
        assert not result.ok
        assert result.reason is not None
        assert result.reason.startswith("refused, both limit")
        state = await stub.control("state")
        assert "open" not in state["commands"]
    finally:
        driver.close()


async def test_closed_limit_stuck_on_during_open_fails_safe(stub: BarrierStub) -> None:
    await stub.control("stuck closed on")  # reads "closed" even when the arm is up
    driver = BarrierDriver(stub.config())
    try:
        result = await driver.open_barrier()
        assert not result.ok
        assert result.reason is not None
        assert "fault while going open" in result.reason
        state = await stub.control("state")
        assert state["commands"][:2] == ["open", "close"]
    finally:
        driver.close()


async def test_controller_fault_input_refuses_open_and_degrades_health(stub: BarrierStub) -> None:
    driver = BarrierDriver(stub.config())
    async with running(driver) as events:
        await events.until(lambda: events.statuses == ["ok"])
        await stub.control("fault on")
        await events.until(lambda: events.statuses == ["ok", "degraded"])
        assert "barrier controller fault input" in events.health[-1][1]
        result = await driver.open_barrier()
        assert not result.ok
        assert result.barrier == "fault"
        await stub.control("fault off")
        await events.until(lambda: events.statuses == ["ok", "degraded", "ok"])


async def test_silent_controller_goes_down_then_recovers(stub: BarrierStub) -> None:
    driver = BarrierDriver(stub.config())
    async with running(driver) as events:
        await events.until(lambda: events.statuses == ["ok"])
        await stub.control("silent on")
        await events.until(lambda: "down" in events.statuses)
        down_detail = dict(events.health)["down"]
        assert "no valid reply for 3 polls" in down_detail
        with pytest.raises(DeviceError):
            await driver.status()
        opened = await driver.open_barrier()
        assert not opened.ok
        assert opened.reason is not None
        assert opened.reason.startswith("controller not answering")
        await stub.control("silent off")
        await events.until(lambda: events.statuses[-1] == "ok", within=10)
        # down is reported once, however many polls failed; recovery passes through degraded.
        assert events.statuses.count("down") == 1
        assert events.statuses[-3:] == ["down", "degraded", "ok"]
        # The open attempt while silent never moved the arm.
        assert "open" not in (await stub.control("state"))["commands"]


async def test_crc_errors_are_retried_and_reported(stub: BarrierStub) -> None:
    driver = BarrierDriver(stub.config())
    async with running(driver) as events:
        await events.until(lambda: events.statuses == ["ok"])
        await stub.control("crc 3")  # every third reply corrupted
        await events.until(lambda: "degraded" in events.statuses)
        assert "CRC error" in dict(events.health)["degraded"]
        # The link still works: reads and a whole open succeed through the retries.
        assert (await driver.status()).barrier == "closed"
        result = await driver.open_barrier()
        assert result.ok, result
        assert driver.crc_errors >= 1
        assert "down" not in events.statuses
        await stub.control("crc 1")  # every reply corrupted: nothing gets through
        await events.until(lambda: "down" in events.statuses)
        await stub.control("crc 0")
        await events.until(lambda: events.statuses[-1] == "ok", within=10)
        assert (await driver.close_barrier()).ok


async def test_url_port_spy_trace(stub: BarrierStub, tmp_path) -> None:
    trace = tmp_path / "trace.txt"
    driver = BarrierDriver(stub.config(port=f"spy://{stub.path}?file={trace}"))
    try:
        assert (await driver.status()).barrier == "closed"
    finally:
        driver.close()
    # The request for 5 discrete inputs from unit 1 at address 0 (FC 0x02), CRC B8 09.
    assert "01 02 00 00 00 05 B8 09" in trace.read_text()


async def test_missing_port_is_a_transport_error_and_health_down(tmp_path) -> None:
    from devices.barrier.driver import ModbusBarrierConfig
    from devices.errors import TransportError

    config = ModbusBarrierConfig(
        type="modbus_rtu",
        port=str(tmp_path / "ttyUSB9"),
        unit_id=1,
        poll_interval_s=0.05,
        reconnect_max_s=0.2,
    )
    driver = BarrierDriver(config)
    with pytest.raises(TransportError):
        await driver.status()
    async with running(driver) as events:
        await events.until(lambda: "down" in events.statuses)
        assert events.statuses == ["degraded", "down"]
        assert "cannot open" in events.health[-1][1]


@pytest.mark.slow
async def test_realistic_timing_auto_close_after_truck_leaves() -> None:
    """Default 3 s travel; the controller closes by itself 1 s after the loop clears."""
    stub = start_stub("--auto-close-s", "1.0")
    driver = BarrierDriver(stub.config(open_timeout_s=6.0, close_timeout_s=6.0))
    try:
        async with running(driver) as events:
            await events.until(lambda: events.presence == [False])
            await stub.control("arrive")
            await events.until(lambda: events.presence == [False, True])
            result = await driver.open_barrier()
            assert result.ok, result
            assert 2.5 <= result.elapsed_s <= 4.5
            await stub.control("leave")
            await events.until(lambda: events.presence[-1] is False)
            async with asyncio.timeout(8):
                while (await stub.control("state"))["closed_limit"] is not True:  # noqa: ASYNC110
                    await asyncio.sleep(0.2)
            assert (await stub.control("state"))["commands"] == ["open", "auto_close"]
    finally:
        driver.close()
        stop_stub(stub)


async def test_hold_mode_open_and_close() -> None:
    stub = start_stub("--travel-s", "0.6", "--mode", "hold")
    driver = BarrierDriver(stub.config(command_mode="hold"))
    try:
        opened = await driver.open_barrier()
        assert opened.ok, opened
        assert (await stub.control("state"))["coils"][0] is True
        closed = await driver.close_barrier()
        assert closed.ok, closed
        state = await stub.control("state")
        assert state["coils"][0] is False
        assert state["commands"] == ["open", "close"]
    finally:
        driver.close()
        stop_stub(stub)


async def test_cancelled_open_commands_close(stub: BarrierStub) -> None:
    driver = BarrierDriver(stub.config())
    try:
        task = asyncio.create_task(driver.open_barrier())
        await asyncio.sleep(0.4)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        state = await stub.control("state")
        assert state["commands"] == ["open", "close"]
        assert state["closed_limit"] is True
    finally:
        driver.close()

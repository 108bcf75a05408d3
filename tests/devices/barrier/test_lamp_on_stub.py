"""The lane's traffic light through the driver, on the simulated relay module (real pty)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from devices.barrier.driver import BarrierDriver
from tests.devices.barrier.conftest import BarrierStub
from tests.devices.barrier.test_driver_on_stub import running


async def stub_reaches(
    stub: BarrierStub, what: Callable[[dict[str, Any]], bool], within: float = 5.0
) -> dict[str, Any]:
    async with asyncio.timeout(within):
        while True:
            state = await stub.control("state")
            if what(state):
                return state
            await asyncio.sleep(0.02)


def lit(state: dict[str, Any]) -> list[str]:
    """The colours the light showed, without the dark instants between two colours."""
    return [lamp for lamp in state["lamps"] if lamp != "off"]


async def test_red_from_the_first_poll(stub: BarrierStub) -> None:
    assert (await stub.control("state"))["lamp"] == "off"  # a module fresh from power-up
    driver = BarrierDriver(stub.config())
    async with running(driver) as events:
        await events.until(lambda: events.statuses == ["ok"])
        state = await stub_reaches(stub, lambda s: s["lamp"] == "red")
        assert state["coils"][2:4] == [True, False]
    assert driver.lamp == "red"


async def test_green_only_at_the_open_limit_and_red_before_the_arm_comes_down(
    stub: BarrierStub,
) -> None:
    driver = BarrierDriver(stub.config())
    heard: list[str] = []
    driver.add_lamp_listener(heard.append)
    async with running(driver) as events:
        await events.until(lambda: events.statuses == ["ok"])
        await stub_reaches(stub, lambda s: s["lamp"] == "red")
        # Asked for green with the barrier down: still red, and why.
        assert driver.want_lamp("green") == "red"
        assert driver.lamp_reason == "the barrier is not commanded open"
        driver.want_lamp("red")
        result = await driver.open_barrier()
        assert result.ok, result
        assert (await stub.control("state"))["lamp"] == "red"  # opened, not yet released
        assert driver.want_lamp("green") == "green"
        await driver.sync_lamp()
        assert (await stub.control("state"))["lamp"] == "green"
        closing = asyncio.create_task(driver.close_barrier())
        moving = await stub_reaches(stub, lambda s: s["motion"] == "closing")
        assert moving["lamp"] == "red"  # red before the arm started down
        assert (await closing).ok
    state = await stub.control("state")
    assert lit(state) == ["red", "green", "red"]
    assert state["lamp"] == "red"
    assert heard == ["green", "red"]


async def test_a_barrier_leaving_its_open_limit_turns_the_light_red(stub: BarrierStub) -> None:
    driver = BarrierDriver(stub.config())
    heard: list[str] = []
    driver.add_lamp_listener(heard.append)
    async with running(driver) as events:
        await events.until(lambda: events.statuses == ["ok"])
        assert (await driver.open_barrier()).ok
        driver.want_lamp("green")
        await driver.sync_lamp()
        await stub_reaches(stub, lambda s: s["lamp"] == "green")
        await stub.control("fault on")  # the controller trips while the truck passes
        await stub_reaches(stub, lambda s: s["lamp"] == "red", within=2.0)
        assert heard == ["green", "red"]
        assert driver.lamp_reason == "the barrier is fault, not fully open"
        await stub.control("fault off")


async def test_a_module_restart_gets_its_light_back(stub: BarrierStub) -> None:
    driver = BarrierDriver(stub.config())
    async with running(driver) as events:
        await events.until(lambda: events.statuses == ["ok"])
        await stub_reaches(stub, lambda s: s["lamp"] == "red")
        state = await stub.control("reboot 0.6")
        assert state["lamp"] == "off" and state["silent"] is True
        await stub_reaches(stub, lambda s: s["lamp"] == "red", within=5.0)


async def test_the_light_is_left_red_when_the_driver_stops(stub: BarrierStub) -> None:
    driver = BarrierDriver(stub.config())
    async with running(driver) as events:
        await events.until(lambda: events.statuses == ["ok"])
        assert (await driver.open_barrier()).ok
        driver.want_lamp("green")
        await driver.sync_lamp()
        await stub_reaches(stub, lambda s: s["lamp"] == "green")
    # `run` was cancelled (the agent stopping): the arm stays, the light is red.
    state = await stub.control("state")
    assert state["lamp"] == "red"
    assert state["open_limit"] is True


async def test_a_module_without_those_relays_degrades_health(stub: BarrierStub) -> None:
    # The stub has 8 relays (coils 0..7): coils 8 and 9 do not exist.
    driver = BarrierDriver(stub.config(registers={"red_lamp_coil": 8, "green_lamp_coil": 9}))
    async with running(driver) as events:
        await events.until(lambda: "degraded" in events.statuses)
        detail = dict(events.health)["degraded"]
        assert "lane signal not set" in detail
        assert "exception 2" in detail
        # The barrier itself still works.
        assert (await driver.status()).barrier == "closed"


async def test_no_light_wired_means_no_lamp_writes(stub: BarrierStub) -> None:
    driver = BarrierDriver(stub.config(registers={"red_lamp_coil": None, "green_lamp_coil": None}))
    async with running(driver) as events:
        await events.until(lambda: events.statuses == ["ok"])
        assert (await driver.open_barrier()).ok
        driver.want_lamp("green")
        await driver.sync_lamp()
        assert (await driver.close_barrier()).ok
    state = await stub.control("state")
    assert state["lamps"] == []
    assert state["coils"][2:4] == [False, False]

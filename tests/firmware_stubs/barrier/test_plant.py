"""The simulated barrier plant stepped by hand (no clock, no pty)."""

from __future__ import annotations

import pytest

from firmware_stubs.barrier.control import apply_command
from firmware_stubs.barrier.model import BarrierPlant
from firmware_stubs.barrier.rtu_slave import RtuSlave


def test_open_takes_the_travel_time_and_limits_follow() -> None:
    plant = BarrierPlant(travel_s=3.0)
    plant.tick(0.0)
    assert plant.closed_limit()
    assert not plant.open_limit()
    plant.write_coil(0, True, 0.0)
    plant.write_coil(0, False, 0.5)
    plant.tick(1.5)
    assert not plant.closed_limit()
    assert not plant.open_limit()
    assert plant.position == pytest.approx(0.5)
    plant.tick(2.9)
    assert not plant.open_limit()
    plant.tick(3.0)
    assert plant.open_limit()
    assert not plant.closed_limit()
    plant.write_coil(1, True, 4.0)
    plant.tick(7.0)
    assert plant.closed_limit()
    assert plant.commands == ["open", "close"]


def test_jammed_arm_stalls_and_can_still_close() -> None:
    plant = BarrierPlant(travel_s=2.0, jammed=True)
    plant.tick(0.0)
    plant.write_coil(0, True, 0.0)
    plant.tick(10.0)
    assert plant.position == pytest.approx(plant.jam_position)
    assert not plant.open_limit()
    assert not plant.closed_limit()
    plant.write_coil(1, True, 10.0)
    plant.tick(12.0)
    assert plant.closed_limit()


def test_auto_close_after_the_truck_leaves() -> None:
    plant = BarrierPlant(travel_s=1.0, auto_close_s=2.0)
    plant.tick(0.0)
    plant.set_loop(1, True, 0.0)
    plant.write_coil(0, True, 0.0)
    plant.tick(1.0)
    assert plant.open_limit()
    plant.set_loop(1, False, 5.0)
    plant.tick(6.9)
    assert plant.open_limit()  # waits its delay
    plant.tick(7.0)
    plant.tick(8.1)
    assert plant.closed_limit()
    assert plant.commands == ["open", "auto_close"]


def test_truck_back_on_the_loop_cancels_auto_close() -> None:
    plant = BarrierPlant(travel_s=1.0, auto_close_s=2.0)
    plant.tick(0.0)
    plant.set_loop(1, True, 0.0)
    plant.write_coil(0, True, 0.0)
    plant.set_loop(1, False, 2.0)
    plant.set_loop(1, True, 3.0)
    plant.tick(10.0)
    assert plant.open_limit()


def test_hold_mode_follows_the_open_relay() -> None:
    plant = BarrierPlant(travel_s=1.0, hold_mode=True)
    plant.tick(0.0)
    plant.write_coil(0, True, 0.0)
    plant.tick(1.0)
    assert plant.open_limit()
    plant.write_coil(0, False, 2.0)
    plant.tick(3.0)
    assert plant.closed_limit()


def test_fault_ignores_push_buttons() -> None:
    plant = BarrierPlant(fault=True)
    plant.tick(0.0)
    plant.write_coil(0, True, 0.0)
    plant.tick(5.0)
    assert plant.closed_limit()
    assert plant.discrete_inputs()[4] is True


def test_stuck_limit_overrides_the_arm() -> None:
    plant = BarrierPlant()
    plant.tick(0.0)
    plant.stuck_open_limit = "on"
    plant.stuck_closed_limit = "off"
    assert plant.discrete_inputs()[2:4] == [True, False]


@pytest.mark.parametrize(
    ("line", "check"),
    [
        ("arrive", lambda p, s: p.loops == [True, False]),
        ("arrive 2", lambda p, s: p.loops == [False, True]),
        ("jam on", lambda p, s: p.jammed),
        ("silent on", lambda p, s: s.silent),
        ("crc 4", lambda p, s: s.crc_every == 4),
        ("stuck closed off", lambda p, s: p.stuck_closed_limit == "off"),
        ("fault on", lambda p, s: p.fault),
        ("module_error on", lambda p, s: p.input_registers()[0] == 0x0005),
        ("state", lambda p, s: True),
    ],
)
def test_control_commands(line: str, check) -> None:
    plant = BarrierPlant()
    slave = RtuSlave(-1, 1, plant)
    reply = apply_command(line, plant, slave, 0.0)
    assert reply.startswith("OK {"), reply
    assert check(plant, slave)


@pytest.mark.parametrize(
    "line", ["", "fly", "jam maybe", "arrive 3", "crc -1", "stuck door on", "jam"]
)
def test_bad_control_commands_say_why(line: str) -> None:
    plant = BarrierPlant()
    reply = apply_command(line, plant, RtuSlave(-1, 1, plant), 0.0)
    assert reply.startswith("ERR "), reply
    assert "arrive [LANE]" in reply  # the help comes along

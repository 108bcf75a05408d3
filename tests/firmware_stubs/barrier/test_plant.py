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
        ("reboot", lambda p, s: s.silent_until == 1.0 and not any(p.coils)),
        ("reboot 0", lambda p, s: s.silent_until == 0.0),
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
    "line",
    ["", "fly", "jam maybe", "arrive 3", "crc -1", "stuck door on", "jam", "reboot 99", "reboot x"],
)
def test_bad_control_commands_say_why(line: str) -> None:
    plant = BarrierPlant()
    reply = apply_command(line, plant, RtuSlave(-1, 1, plant), 0.0)
    assert reply.startswith("ERR "), reply
    assert "arrive [LANE]" in reply  # the help comes along


def test_the_traffic_light_follows_relays_3_and_4() -> None:
    plant = BarrierPlant()
    plant.tick(0.0)
    assert plant.lamp() == "off"
    plant.write_coil(2, True, 0.0)
    assert plant.lamp() == "red"
    plant.write_coil(2, False, 0.1)
    plant.write_coil(3, True, 0.1)
    assert plant.lamp() == "green"
    plant.write_coil(2, True, 0.2)
    assert plant.lamp() == "both"  # a driver bug would show here
    plant.write_coil(0, True, 0.3)  # the barrier relays do not touch the light
    assert plant.lamp_history == ["red", "off", "green", "both"]
    plant.reset_outputs()
    assert plant.lamp() == "off"
    assert plant.snapshot()["lamps"] == ["red", "off", "green", "both", "off"]
    assert plant.snapshot()["lamp"] == "off"


def test_a_rebooting_module_answers_nothing_for_a_while() -> None:
    plant = BarrierPlant()
    slave = RtuSlave(-1, 1, plant)
    plant.write_coil(2, True, 0.0)
    reply = apply_command("reboot 0.5", plant, slave, 10.0)
    assert '"silent":true' in reply and '"lamp":"off"' in reply
    assert slave.silent_until == 10.5
    assert '"silent":false' in apply_command("state", plant, slave, 10.6)

"""Register map and driver config validation."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from devices.barrier.driver import ModbusBarrierConfig
from devices.barrier.registers import BarrierRegisterMap


def test_defaults_are_the_documented_profile() -> None:
    config = ModbusBarrierConfig(type="modbus_rtu", port="/dev/ttyUSB0", unit_id=1)
    assert config.baudrate == 9600
    assert config.parity == "N"
    assert config.stopbits == 1
    assert config.registers.open_coil == 0
    assert config.registers.close_coil == 1
    assert config.registers.red_lamp_coil == 2
    assert config.registers.green_lamp_coil == 3
    assert config.registers.has_lamps
    assert config.registers.input_span() == (0, 5)


def test_a_lamp_on_a_barrier_relay_names_both_fields() -> None:
    with pytest.raises(ValidationError, match="green_lamp_coil and open_coil both use coil 0"):
        BarrierRegisterMap(green_lamp_coil=0)
    with pytest.raises(ValidationError, match="green_lamp_coil and red_lamp_coil both use coil"):
        BarrierRegisterMap(red_lamp_coil=4, green_lamp_coil=4)


def test_same_input_twice_names_both_fields() -> None:
    with pytest.raises(ValidationError, match="closed_limit_input and open_limit_input both"):
        BarrierRegisterMap(open_limit_input=2, closed_limit_input=2)


def test_inputs_too_far_apart_for_one_read() -> None:
    with pytest.raises(ValidationError, match="more than one read"):
        BarrierRegisterMap(loop_input=0, fault_input=5000)


def test_pulse_mode_needs_a_close_coil() -> None:
    with pytest.raises(ValidationError, match=r"needs registers\.close_coil"):
        ModbusBarrierConfig.model_validate(
            {
                "type": "modbus_rtu",
                "port": "/dev/x",
                "unit_id": 1,
                "registers": {"close_coil": None},
            }
        )
    hold = ModbusBarrierConfig.model_validate(
        {
            "type": "modbus_rtu",
            "port": "/dev/x",
            "unit_id": 1,
            "command_mode": "hold",
            "registers": {"close_coil": None},
        }
    )
    assert hold.registers.close_coil is None


@pytest.mark.parametrize(
    "bad",
    [
        {"unit_id": 0},
        {"unit_id": 248},
        {"parity": "X"},
        {"type": "modbus_tcp"},
        {"surprise": 1},
    ],
)
def test_bad_values_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        ModbusBarrierConfig.model_validate(
            {"type": "modbus_rtu", "port": "/dev/x", "unit_id": 1} | bad
        )


def test_every_field_is_described() -> None:
    for model in (ModbusBarrierConfig, BarrierRegisterMap):
        for name, field in model.model_fields.items():
            assert field.description, f"{model.__name__}.{name} has no description"

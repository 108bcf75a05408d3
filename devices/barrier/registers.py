"""The register map of a generic RS-485 Modbus RTU relay/IO module driving a barrier.

The profile is the layout most 4- and 8-channel relay/IO modules share: relay outputs
are coils numbered from PDU address 0, opto-isolated inputs are discrete inputs from
PDU address 0, status words are input registers. Every address is configurable per
deployment (`BarrierRegisterMap`); the constants below are the defaults and what the
firmware stub simulates. See `docs/barrier-modbus.md` for the wiring.

Facts from the MODBUS Application Protocol Specification V1.1b3 (modbus.org):
- addresses on the wire are zero-based PDU addresses (data model "coil 1" is address 0);
- function codes used: 0x01 read coils, 0x02 read discrete inputs, 0x04 read input
  registers, 0x05 write single coil (0xFF00 = ON, 0x0000 = OFF);
- a read of N bits returns ceil(N/8) bytes, first bit in the least significant bit.
From the MODBUS over Serial Line Specification V1.02: unit ids 1..247 (0 is broadcast,
never answered), RTU frames end in a CRC-16 (polynomial 0xA001, initial 0xFFFF, low byte
first) and are separated by at least 3.5 character times of silence.
"""

from __future__ import annotations

from typing import Final, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

# Coils (relay outputs, FC 0x01 read / 0x05 write).
COIL_OPEN: Final = 0
"""Relay 1: wired to the barrier controller's OPEN push-button input (pulse) or held."""
COIL_CLOSE: Final = 1
"""Relay 2: wired to the barrier controller's CLOSE push-button input (pulse mode)."""
COIL_LAMP_RED: Final = 2
"""Relay 3: the lane's traffic light, red lamp (lit while the relay is energised)."""
COIL_LAMP_GREEN: Final = 3
"""Relay 4: the lane's traffic light, green lamp (lit while the relay is energised)."""

# Discrete inputs (opto-isolated dry-contact inputs, FC 0x02).
DI_LOOP_LANE_1: Final = 0
"""Input 1: loop detector channel 1 presence relay (closed = vehicle over the loop)."""
DI_LOOP_LANE_2: Final = 1
"""Input 2: loop detector channel 2 presence relay (a second lane or a safety loop)."""
DI_OPEN_LIMIT: Final = 2
"""Input 3: barrier fully-open limit switch (closed = arm vertical)."""
DI_CLOSED_LIMIT: Final = 3
"""Input 4: barrier fully-closed limit switch (closed = arm horizontal)."""
DI_FAULT: Final = 4
"""Input 5: barrier controller fault output (motor thermal trip, obstruction, power)."""

# Input registers (FC 0x04).
IR_MODULE_STATUS: Final = 0
"""Module status word: see the `STATUS_*` bits."""
IR_FIRMWARE_VERSION: Final = 1
"""Firmware version, major in the high byte, minor in the low byte."""

STATUS_OUTPUTS_ENABLED: Final = 0x0001
"""Set while the relay outputs are powered and enabled."""
STATUS_WATCHDOG_TRIPPED: Final = 0x0002
"""Set when the module's communication watchdog dropped the outputs."""
STATUS_INTERNAL_ERROR: Final = 0x0004
"""Set on an internal self-test error (EEPROM, supply)."""

MAX_READ_BITS: Final = 2000
"""The most bits one read of coils or discrete inputs may ask for (spec, FC 0x01/0x02)."""

COIL_ON: Final = 0xFF00
COIL_OFF: Final = 0x0000

Address = int


class BarrierRegisterMap(BaseModel):
    """Where each signal of the barrier is on the relay/IO module (zero-based PDU addresses)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    open_coil: Address = Field(
        default=COIL_OPEN, ge=0, le=0xFFFF, description="coil of the OPEN relay"
    )
    close_coil: Address | None = Field(
        default=COIL_CLOSE,
        ge=0,
        le=0xFFFF,
        description="coil of the CLOSE relay; needed in pulse mode, unused in hold mode",
    )
    red_lamp_coil: Address | None = Field(
        default=COIL_LAMP_RED,
        ge=0,
        le=0xFFFF,
        description="coil of the lane signal's red lamp; null if not wired (e.g. red on the "
        "green relay's normally-closed contact)",
    )
    green_lamp_coil: Address | None = Field(
        default=COIL_LAMP_GREEN,
        ge=0,
        le=0xFFFF,
        description="coil of the lane signal's green lamp; null if the lane has no traffic light",
    )
    loop_input: Address = Field(
        default=DI_LOOP_LANE_1,
        ge=0,
        le=0xFFFF,
        description="discrete input of this lane's loop detector presence output",
    )
    open_limit_input: Address = Field(
        default=DI_OPEN_LIMIT, ge=0, le=0xFFFF, description="discrete input of the fully-open limit"
    )
    closed_limit_input: Address = Field(
        default=DI_CLOSED_LIMIT,
        ge=0,
        le=0xFFFF,
        description="discrete input of the fully-closed limit",
    )
    fault_input: Address | None = Field(
        default=DI_FAULT,
        ge=0,
        le=0xFFFF,
        description="discrete input of the barrier controller's fault output; null if not wired",
    )
    status_register: Address | None = Field(
        default=IR_MODULE_STATUS,
        ge=0,
        le=0xFFFF,
        description="input register holding the module status word; null if the module has none",
    )

    @model_validator(mode="after")
    def _distinct_addresses(self) -> Self:
        inputs = {
            "loop_input": self.loop_input,
            "open_limit_input": self.open_limit_input,
            "closed_limit_input": self.closed_limit_input,
            "fault_input": self.fault_input,
        }
        _check_distinct("discrete input", inputs)
        _check_distinct(
            "coil",
            {
                "open_coil": self.open_coil,
                "close_coil": self.close_coil,
                "red_lamp_coil": self.red_lamp_coil,
                "green_lamp_coil": self.green_lamp_coil,
            },
        )
        start, count = self.input_span()
        if count > MAX_READ_BITS:
            raise ValueError(
                f"discrete inputs span {start}..{start + count - 1}, more than one read of "
                f"{MAX_READ_BITS} bits: wire them closer together"
            )
        return self

    def input_span(self) -> tuple[Address, int]:
        """The one contiguous discrete-input read (start, count) that covers every input."""
        used = [a for a in self.inputs().values() if a is not None]
        start = min(used)
        return start, max(used) - start + 1

    @property
    def has_lamps(self) -> bool:
        """Whether a traffic light is wired (at least one lamp coil)."""
        return self.red_lamp_coil is not None or self.green_lamp_coil is not None

    def inputs(self) -> dict[str, Address | None]:
        return {
            "loop": self.loop_input,
            "open_limit": self.open_limit_input,
            "closed_limit": self.closed_limit_input,
            "fault": self.fault_input,
        }


def _check_distinct(kind: str, named: dict[str, Address | None]) -> None:
    seen: dict[Address, str] = {}
    for name, address in named.items():
        if address is None:
            continue
        if address in seen:
            raise ValueError(
                f"{name} and {seen[address]} both use {kind} {address}: give each its own address"
            )
        seen[address] = name

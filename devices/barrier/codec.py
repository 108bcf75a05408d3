"""Pure logic of the barrier controller: input bits → typed status, commands → coil writes.

No I/O and no clocks. The Modbus RTU framing itself is pymodbus's (its `FramerRTU`);
this module only interprets the bits and registers read through it, and classifies
the bytes of a reply that never became a valid frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from pymodbus.framer import FramerRTU

from devices.barrier.registers import (
    STATUS_INTERNAL_ERROR,
    STATUS_OUTPUTS_ENABLED,
    STATUS_WATCHDOG_TRIPPED,
    BarrierRegisterMap,
)
from devices.errors import FrameError

BarrierState = Literal["closed", "opening", "open", "closing", "fault", "unknown"]
BarrierAction = Literal["open", "close"]
CommandMode = Literal["pulse", "hold"]
UnansweredKind = Literal["no_reply", "crc_error", "garbled"]
LampColour = Literal["red", "green"]


@dataclass(frozen=True, slots=True)
class InputBits:
    """The barrier's discrete inputs as read from the module."""

    loop: bool
    open_limit: bool
    closed_limit: bool
    fault: bool


@dataclass(frozen=True, slots=True)
class BarrierStatus:
    """What the gate needs to know about its lane and barrier at one instant."""

    lane_occupied: bool
    barrier: BarrierState
    open_limit: bool
    closed_limit: bool
    fault_input: bool
    reason: str | None = None
    """Why the state is `fault` or `unknown`, else None."""
    module_problems: tuple[str, ...] = ()
    """Problems the module's own status word reports (empty when it has none)."""


@dataclass(frozen=True, slots=True)
class CoilWrite:
    """One coil write (FC 0x05) and how long to hold it before the next step."""

    address: int
    on: bool
    hold_s: float = 0.0


def decode_inputs(bits: Sequence[bool], start: int, registers: BarrierRegisterMap) -> InputBits:
    """Pick the barrier's inputs out of a discrete-input read that began at `start`.

    Raises `FrameError` if the read is too short to hold every configured input.
    """

    def bit(address: int | None) -> bool:
        if address is None:
            return False
        index = address - start
        if index < 0 or index >= len(bits):
            raise FrameError(
                f"discrete input {address} is outside the read of {len(bits)} bits from {start}"
            )
        return bool(bits[index])

    return InputBits(
        loop=bit(registers.loop_input),
        open_limit=bit(registers.open_limit_input),
        closed_limit=bit(registers.closed_limit_input),
        fault=bit(registers.fault_input),
    )


def barrier_state(
    inputs: InputBits, last_command: BarrierAction | None
) -> tuple[BarrierState, str | None]:
    """The barrier's state from its limit switches, fault input and the last command sent.

    Between the limits the state is inferred from the last command; with no command
    known it is `unknown` (a barrier stopped half-way, or a limit switch that fails).
    """
    if inputs.fault:
        return "fault", "barrier controller fault input is active"
    if inputs.open_limit and inputs.closed_limit:
        return "fault", "both limit switches active at once: a limit switch is stuck or miswired"
    if inputs.closed_limit:
        return "closed", None
    if inputs.open_limit:
        return "open", None
    if last_command == "open":
        return "opening", None
    if last_command == "close":
        return "closing", None
    return "unknown", "barrier is between its limit switches and no command was sent"


def module_problems(status_word: int | None) -> tuple[str, ...]:
    """The problems a module status word (input register) reports; empty if healthy."""
    if status_word is None:
        return ()
    problems: list[str] = []
    if not status_word & STATUS_OUTPUTS_ENABLED:
        problems.append("relay outputs disabled")
    if status_word & STATUS_WATCHDOG_TRIPPED:
        problems.append("communication watchdog tripped")
    if status_word & STATUS_INTERNAL_ERROR:
        problems.append("module internal error")
    return tuple(problems)


def decode_status(
    bits: Sequence[bool],
    start: int,
    registers: BarrierRegisterMap,
    last_command: BarrierAction | None,
    status_word: int | None = None,
) -> BarrierStatus:
    """A `BarrierStatus` from one discrete-input read (and the module status word if read)."""
    inputs = decode_inputs(bits, start, registers)
    state, reason = barrier_state(inputs, last_command)
    return BarrierStatus(
        lane_occupied=inputs.loop,
        barrier=state,
        open_limit=inputs.open_limit,
        closed_limit=inputs.closed_limit,
        fault_input=inputs.fault,
        reason=reason,
        module_problems=module_problems(status_word),
    )


def command_plan(
    action: BarrierAction,
    registers: BarrierRegisterMap,
    mode: CommandMode,
    pulse_s: float,
) -> tuple[CoilWrite, ...]:
    """The coil writes that carry out `action`, in order.

    Pulse mode (push-button inputs of the barrier controller): release the other relay,
    then close this action's relay for `pulse_s` and release it. Hold mode (one output
    held for "open"): open = relay on, close = relay off. Every plan first releases the
    relay of the opposite action, so a close always wins over a stuck open command.
    """
    if mode == "hold":
        writes = [CoilWrite(registers.open_coil, action == "open")]
        if registers.close_coil is not None:
            writes.insert(0, CoilWrite(registers.close_coil, False))
        return tuple(writes)
    if registers.close_coil is None:
        raise ValueError("pulse mode needs a close_coil in the register map")
    this, other = (
        (registers.open_coil, registers.close_coil)
        if action == "open"
        else (registers.close_coil, registers.open_coil)
    )
    return (
        CoilWrite(other, False),
        CoilWrite(this, True, pulse_s),
        CoilWrite(this, False),
    )


def lamp_colour(
    wanted: LampColour, status: BarrierStatus | None, last_command: BarrierAction | None
) -> tuple[LampColour, str | None]:
    """The colour the lane's traffic light must show, and why it is not `wanted` (or None).

    Green needs all three: the lane asks for it (a verified open, truck in the lane),
    the last command sent to the barrier was open, and the last reading shows the arm at
    its fully-open limit without fault. Anything else is red: red is the default, the
    state at start-up and whenever something is unknown.
    """
    if wanted == "red":
        return "red", None
    if last_command != "open":
        return "red", "the barrier is not commanded open"
    if status is None:
        return "red", "the barrier's state is not known"
    if status.barrier != "open":
        return "red", f"the barrier is {status.barrier}, not fully open"
    return "green", None


def lamp_plan(colour: LampColour, registers: BarrierRegisterMap) -> tuple[CoilWrite, ...]:
    """The coil writes that make the traffic light show `colour`, in order.

    The lamp going dark is always written first: the light is never green and red at
    once, and a failure half-way leaves it dark or red, never wrongly green.
    """
    red, green = registers.red_lamp_coil, registers.green_lamp_coil
    off, on = (green, red) if colour == "red" else (red, green)
    writes: list[CoilWrite] = []
    if off is not None:
        writes.append(CoilWrite(off, False))
    if on is not None:
        writes.append(CoilWrite(on, True))
    return tuple(writes)


def frame_crc_ok(frame: bytes) -> bool:
    """Whether an RTU frame's last two bytes are the CRC-16 of the rest (pymodbus's CRC)."""
    if len(frame) < 4:
        return False
    body, crc = frame[:-2], frame[-2:]
    return FramerRTU.check_CRC(body, (crc[0] << 8) | crc[1])


def classify_unanswered(received: bytes) -> UnansweredKind:
    """Why a request got no valid reply, from the bytes that came back for it."""
    if not received:
        return "no_reply"
    if len(received) >= 4 and not frame_crc_ok(received):
        return "crc_error"
    return "garbled"

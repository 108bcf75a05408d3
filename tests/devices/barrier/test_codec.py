"""The pure barrier codec: table tests and properties."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pymodbus.framer import FramerRTU
from pymodbus.pdu import DecodePDU
from pymodbus.pdu.bit_message import ReadDiscreteInputsResponse

from devices.barrier.codec import (
    BarrierStatus,
    CoilWrite,
    InputBits,
    barrier_state,
    classify_unanswered,
    command_plan,
    decode_inputs,
    decode_status,
    frame_crc_ok,
    lamp_colour,
    lamp_plan,
    module_problems,
)
from devices.barrier.registers import BarrierRegisterMap
from devices.errors import FrameError

DEFAULT = BarrierRegisterMap()


def bits(loop: bool = False, open_: bool = False, closed: bool = False, fault: bool = False):
    return InputBits(loop=loop, open_limit=open_, closed_limit=closed, fault=fault)


@pytest.mark.parametrize(
    ("inputs", "last", "state"),
    [
        (bits(closed=True), None, "closed"),
        (bits(closed=True), "open", "closed"),  # commanded but not yet moved
        (bits(open_=True), None, "open"),
        (bits(open_=True), "close", "open"),
        (bits(), "open", "opening"),
        (bits(), "close", "closing"),
        (bits(), None, "unknown"),
        (bits(open_=True, closed=True), "open", "fault"),
        (bits(closed=True, fault=True), None, "fault"),
        (bits(open_=True, fault=True), "open", "fault"),
    ],
)
def test_barrier_state_table(inputs: InputBits, last, state: str) -> None:
    got, reason = barrier_state(inputs, last)
    assert got == state
    assert (reason is None) == (state not in ("fault", "unknown"))


def test_decode_status_default_profile() -> None:
    # DI0 loop lane 1, DI1 loop lane 2, DI2 open limit, DI3 closed limit, DI4 fault.
    status = decode_status([True, False, False, True, False], 0, DEFAULT, None, 0x0001)
    assert status == BarrierStatus(
        lane_occupied=True,
        barrier="closed",
        open_limit=False,
        closed_limit=True,
        fault_input=False,
    )


def test_decode_status_from_a_real_frame_through_pymodbus() -> None:
    # Unit 1, FC 0x02, 1 byte: 0b00001000 (closed limit only), as the stub sends it.
    framer = FramerRTU(DecodePDU(False))
    _used, pdu = framer.handleFrame(bytes.fromhex("01020108a04e"), 1, 0)
    assert isinstance(pdu, ReadDiscreteInputsResponse)
    status = decode_status(pdu.bits, 0, DEFAULT, None)
    assert status.barrier == "closed"
    assert not status.lane_occupied


def test_decode_inputs_with_a_moved_map() -> None:
    registers = BarrierRegisterMap(
        loop_input=17, open_limit_input=10, closed_limit_input=11, fault_input=None
    )
    assert registers.input_span() == (10, 8)
    read = [False] * 8
    read[7] = True  # address 17
    read[0] = True  # address 10
    assert decode_inputs(read, 10, registers) == bits(loop=True, open_=True)


def test_decode_inputs_short_read_is_a_frame_error() -> None:
    with pytest.raises(FrameError, match="outside the read"):
        decode_inputs([True, False], 0, DEFAULT)


@given(st.lists(st.booleans(), max_size=40), st.integers(0, 10))
def test_decode_never_crashes_otherwise(read: list[bool], start: int) -> None:
    try:
        status = decode_status(read, start, DEFAULT, None)
    except FrameError:
        return
    assert status.barrier in ("closed", "open", "fault", "unknown")


@pytest.mark.parametrize(
    ("word", "problems"),
    [
        (0x0001, ()),
        (None, ()),
        (0x0000, ("relay outputs disabled",)),
        (0x0003, ("communication watchdog tripped",)),
        (0x0005, ("module internal error",)),
    ],
)
def test_module_problems(word: int | None, problems: tuple[str, ...]) -> None:
    assert module_problems(word) == problems


def test_command_plans() -> None:
    assert command_plan("open", DEFAULT, "pulse", 0.5) == (
        CoilWrite(1, False),
        CoilWrite(0, True, 0.5),
        CoilWrite(0, False),
    )
    assert command_plan("close", DEFAULT, "pulse", 0.3) == (
        CoilWrite(0, False),
        CoilWrite(1, True, 0.3),
        CoilWrite(1, False),
    )
    assert command_plan("open", DEFAULT, "hold", 0.5) == (CoilWrite(1, False), CoilWrite(0, True))
    assert command_plan("close", DEFAULT, "hold", 0.5) == (CoilWrite(1, False), CoilWrite(0, False))
    no_close = BarrierRegisterMap(close_coil=None)
    assert command_plan("close", no_close, "hold", 0.5) == (CoilWrite(0, False),)
    with pytest.raises(ValueError, match="close_coil"):
        command_plan("open", no_close, "pulse", 0.5)


@given(st.sampled_from(["open", "close"]), st.sampled_from(["pulse", "hold"]))
def test_every_plan_ends_with_no_relay_of_the_other_action_on(action, mode) -> None:
    plan = command_plan(action, DEFAULT, mode, 0.2)
    final: dict[int, bool] = {}
    for write in plan:
        final[write.address] = write.on
    assert DEFAULT.close_coil is not None
    if action == "close":
        assert final[DEFAULT.open_coil] is False  # a close always releases OPEN
    else:
        assert final.get(DEFAULT.close_coil, False) is False


@given(st.binary(min_size=2, max_size=60))
def test_crc_of_frames_built_by_pymodbus(body: bytes) -> None:
    crc = FramerRTU.compute_CRC(body)
    frame = body + crc.to_bytes(2, "big")
    assert frame_crc_ok(frame)
    assert classify_unanswered(frame) == "garbled"  # well-formed but never decoded
    damaged = frame[:-1] + bytes([frame[-1] ^ 0x01])
    assert not frame_crc_ok(damaged)
    assert classify_unanswered(damaged) == "crc_error"


def test_known_crc_from_the_spec_example() -> None:
    # Read 5 discrete inputs from address 0 of unit 1: the CRC is B8 09 (low byte first).
    assert frame_crc_ok(bytes.fromhex("01020000 0005 b809".replace(" ", "")))
    assert classify_unanswered(b"") == "no_reply"
    assert classify_unanswered(b"\x01\x02") == "garbled"


def _status(barrier: str) -> BarrierStatus:
    return BarrierStatus(
        lane_occupied=True,
        barrier=barrier,  # type: ignore[arg-type]
        open_limit=barrier == "open",
        closed_limit=barrier == "closed",
        fault_input=barrier == "fault",
    )


@pytest.mark.parametrize(
    ("wanted", "barrier", "last", "colour", "why"),
    [
        ("green", "open", "open", "green", None),
        ("red", "open", "open", "red", None),
        ("green", "opening", "open", "red", "the barrier is opening, not fully open"),
        ("green", "fault", "open", "red", "the barrier is fault, not fully open"),
        ("green", "unknown", "open", "red", "the barrier is unknown, not fully open"),
        ("green", "open", "close", "red", "the barrier is not commanded open"),
        ("green", "open", None, "red", "the barrier is not commanded open"),
        ("green", None, "open", "red", "the barrier's state is not known"),
    ],
)
def test_green_needs_the_ask_an_open_command_and_the_open_limit(
    wanted, barrier, last, colour, why
) -> None:
    status = None if barrier is None else _status(barrier)
    assert lamp_colour(wanted, status, last) == (colour, why)


@given(
    st.sampled_from(["red", "green"]),
    st.sampled_from(["closed", "opening", "open", "closing", "fault", "unknown", None]),
    st.sampled_from(["open", "close", None]),
)
def test_the_light_is_never_green_unless_every_condition_holds(wanted, barrier, last) -> None:
    status = None if barrier is None else _status(barrier)
    colour, why = lamp_colour(wanted, status, last)
    green_allowed = wanted == "green" and barrier == "open" and last == "open"
    assert (colour == "green") == green_allowed
    assert (why is None) == (colour == wanted)


def test_lamp_plan_darkens_one_lamp_before_lighting_the_other() -> None:
    assert lamp_plan("red", DEFAULT) == (CoilWrite(3, False), CoilWrite(2, True))
    assert lamp_plan("green", DEFAULT) == (CoilWrite(2, False), CoilWrite(3, True))
    # Red on the green relay's normally-closed contact: only the green coil is driven.
    changeover = BarrierRegisterMap(red_lamp_coil=None, green_lamp_coil=5)
    assert lamp_plan("red", changeover) == (CoilWrite(5, False),)
    assert lamp_plan("green", changeover) == (CoilWrite(5, True),)
    none = BarrierRegisterMap(red_lamp_coil=None, green_lamp_coil=None)
    assert not none.has_lamps
    assert lamp_plan("green", none) == ()

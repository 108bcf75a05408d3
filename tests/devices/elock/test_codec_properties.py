"""Property tests: nothing but the codec's own errors escape; every written message round-trips."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devices.elock import profile
from devices.elock.block import Area, BondWatchBlock, CommandResult, decode_block
from devices.elock.bodies import (
    STATUS_SOUTH,
    STATUS_WEST,
    Authentication,
    BatchLocation,
    Heartbeat,
    Location,
    PlatformResponse,
    Registration,
    RegistrationResponse,
    TerminalResponse,
    Transparent,
)
from devices.elock.codec import decode, encode
from devices.elock.framing import FrameSplitter, wrap
from devices.elock.header import Header
from devices.elock.tlv import Extra, decode_item
from devices.errors import FrameError

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
ascii_text = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=7)


@given(st.binary(max_size=300))
@settings(max_examples=300)
def test_arbitrary_bytes_raise_only_frame_errors(data: bytes) -> None:
    for candidate in (data, b"\x7e" + data + b"\x7e"):
        for strict in (True, False):
            with contextlib.suppress(FrameError):
                decode(candidate, strict=strict)


@given(
    st.sampled_from(
        [0x0001, 0x8001, 0x0002, 0x0100, 0x8100, 0x0102, 0x0200, 0x0704, 0x0900, 0x8900, 0x1234]
    ),
    st.booleans(),
    st.binary(max_size=200),
)
@settings(max_examples=200)
def test_well_framed_random_bodies_raise_only_frame_errors(
    msg_id: int, v2019: bool, body: bytes
) -> None:
    header = Header(msg_id=msg_id, phone="13800000001", serial=7, version=1 if v2019 else None)
    raw = wrap(header.encode(len(body)) + body)
    try:
        message = decode(raw)
    except FrameError:
        return
    assert message.msg_id == msg_id


@given(st.lists(st.binary(max_size=60), max_size=10))
def test_splitter_never_raises_and_keeps_frames_whole(chunks: list[bytes]) -> None:
    frame = wrap(bytes.fromhex("0002000001380000000100 07".replace(" ", "")))
    splitter = FrameSplitter()
    out: list[bytes] = []
    for chunk in chunks:
        out.extend(splitter.feed(chunk))
    out.extend(splitter.feed(frame))
    assert out[-1] == frame or out[-1].endswith(frame[1:])


def _headers() -> st.SearchStrategy[Header]:
    return st.one_of(
        st.builds(
            Header,
            msg_id=st.just(0),
            phone=st.text("0123456789", min_size=12, max_size=12),
            serial=u16,
        ),
        st.builds(
            Header,
            msg_id=st.just(0),
            phone=st.text("0123456789", min_size=20, max_size=20),
            serial=u16,
            version=u8,
        ),
    )


times = st.datetimes(datetime(2001, 1, 1), datetime(2098, 12, 31), timezones=st.just(UTC)).map(
    lambda t: t.replace(microsecond=0)
)

blocks = st.builds(
    BondWatchBlock,
    lock_id=st.none() | ascii_text.filter(bool),
    state=st.none() | st.sampled_from(sorted(profile.STATE_CODES.values())),
    event=st.none() | st.sampled_from(sorted(profile.EVENT_CODES.values())),
    battery_pct=st.none() | st.integers(0, 100),
    battery_mv=st.none() | u16,
    wrong_passwords=st.none() | u8,
    command_result=st.none() | st.builds(CommandResult, u16, u8, u8, u8),
    trip_id=st.none() | ascii_text,
    command=st.none() | u8,
    token=st.none() | st.binary(max_size=40),
    area=st.none()
    | st.builds(
        Area,
        st.integers(-90_000_000, 90_000_000).map(lambda n: n / 1e6),
        st.integers(-180_000_000, 180_000_000).map(lambda n: n / 1e6),
        u32,
    ),
    report_counter=st.none() | u32,
    report_mac=st.none() | st.binary(min_size=16, max_size=16),
).map(
    lambda b: BondWatchBlock(
        **{**vars(b), "battery_mv": None if b.battery_pct is None else (b.battery_mv or 0)}
    )
)

extras = st.lists(
    st.one_of(
        st.builds(
            Extra,
            st.sampled_from([0x01, 0x02, 0x03, 0x25, 0x2A, 0x30, 0x31, 0x63, 0xD5, 0xAB]),
            st.binary(max_size=30),
        ),
        blocks.map(lambda b: Extra(profile.TLV_BONDWATCH, b.encode())),
    ),
    max_size=5,
)


@st.composite
def locations(draw: st.DrawFn) -> Location:
    lat = draw(st.integers(-90_000_000, 90_000_000)) / 1e6
    lon = draw(st.integers(-180_000_000, 180_000_000)) / 1e6
    status = draw(u32) & ~(STATUS_SOUTH | STATUS_WEST)
    status |= (STATUS_SOUTH if lat < 0 else 0) | (STATUS_WEST if lon < 0 else 0)
    items = tuple(decode_item(e.id, e.raw) for e in draw(extras))
    return Location(
        alarm=draw(u32),
        status=status,
        lat=lat,
        lon=lon,
        alt_m=draw(st.integers(-32768, 32767)),
        speed_kmh=draw(u16) / 10,
        course_deg=draw(st.integers(0, 359)),
        time=draw(st.none() | times),
        extras=items,
    )


def _registration(v2019: bool) -> st.SearchStrategy[Registration]:
    return st.builds(
        Registration,
        u16,
        u16,
        ascii_text.map(lambda s: s[:5]),
        ascii_text,
        ascii_text,
        u8,
        st.sampled_from(["", "粤B12345", "沪A0001"]),
        st.just("2019" if v2019 else "2013"),
    )


@given(_headers(), st.data())
@settings(max_examples=150)
def test_written_messages_round_trip(header: Header, data: st.DataObject) -> None:
    v2019 = header.version is not None
    body = data.draw(
        st.one_of(
            st.builds(TerminalResponse, u16, u16, u8),
            st.builds(PlatformResponse, u16, u16, u8),
            st.just(Heartbeat()),
            _registration(v2019),
            st.builds(RegistrationResponse, u16, st.just(0), ascii_text),
            st.builds(RegistrationResponse, u16, st.integers(1, 4)),
            st.builds(
                Authentication,
                ascii_text,
                *((ascii_text, ascii_text) if v2019 else (st.just(""), st.just(""))),
            ),
            locations(),
            st.builds(
                BatchLocation, st.integers(0, 1), st.lists(locations(), max_size=3).map(tuple)
            ),
            st.builds(Transparent, u8, st.binary(max_size=50), st.booleans()),
            blocks.map(lambda b: Transparent(profile.TRANSPARENT_TYPE, b.encode(), True)),
        )
    )
    raw = encode(header, body)
    message = decode(raw)
    assert message.body == body
    assert message.header.phone == header.phone
    assert message.header.serial == header.serial
    assert message.header.version == header.version
    assert message.checksum_ok
    assert raw.count(0x7E) == 2


@given(blocks)
def test_block_round_trip(block: BondWatchBlock) -> None:
    assert decode_block(block.encode()) == block


@given(st.binary(max_size=40).filter(lambda b: len(b) != 16))
def test_report_mac_of_another_length_is_a_frame_error(mac: bytes) -> None:
    raw = BondWatchBlock(lock_id="L1").encode() + bytes([profile.SUB_REPORT_MAC, len(mac)]) + mac
    with pytest.raises(FrameError, match="sub-item 0x0C"):
        decode_block(raw)


@given(st.binary(max_size=8).filter(lambda b: len(b) != 4))
def test_report_counter_of_another_length_is_a_frame_error(value: bytes) -> None:
    raw = BondWatchBlock().encode() + bytes([profile.SUB_REPORT_COUNTER, len(value)]) + value
    with pytest.raises(FrameError, match="sub-item 0x0B"):
        decode_block(raw)

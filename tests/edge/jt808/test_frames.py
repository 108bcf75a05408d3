"""The gateway's framing as properties: torn reads, garbage, sub-packages, any bytes."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from devices.elock.bodies import BatchLocation, Body, Heartbeat, Location, RawBody, Transparent
from devices.elock.codec import encode
from devices.elock.header import Header
from edge.jt808.frames import BAD_FRAME_REASONS, BadFrame, Frame, FrameReader
from tests.edge.jt808.conftest import LOCK_PHONE, lock_report

bodies = st.one_of(
    st.just(Heartbeat()),
    st.integers(1, 2000).map(lambda c: lock_report(c, lat=22.5 + c / 1e4)),
    # 0x7E and 0x7D in the data: escaped on the wire
    st.binary(max_size=300).map(lambda data: Transparent(0xF1, b"\x7e\x7d" + data)),
)
versions = st.sampled_from([None, 1])


def frames_of(items: list[tuple[Body, int | None]]) -> list[bytes]:
    return [
        encode(Header(body.MSG_ID, LOCK_PHONE, serial, version=version), body)
        for serial, (body, version) in enumerate(items)
    ]


def cut(data: bytes, points: list[int]) -> list[bytes]:
    marks = sorted({p % (len(data) + 1) for p in points})
    return [data[a:b] for a, b in zip([0, *marks], [*marks, len(data)], strict=True)]


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.tuples(bodies, versions), min_size=1, max_size=8), st.lists(st.integers(0, 10**6))
)
def test_torn_reads_give_exactly_the_frames_sent(
    items: list[tuple[Body, int | None]], points: list[int]
) -> None:
    wire = b"".join(frames_of(items))
    reader = FrameReader()
    out = [event for chunk in cut(wire, points) for event in reader.feed(chunk, 0.0)]
    assert all(isinstance(event, Frame) for event in out)
    # Compared as they encode (a decoded report also names its items)
    assert [e.body.encode(None) for e in out if isinstance(e, Frame)] == [
        body.encode(None) for body, _ in items
    ]
    assert [e.header.serial for e in out if isinstance(e, Frame)] == list(range(len(items)))
    assert reader.buffered == 0


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.tuples(bodies, versions), min_size=1, max_size=6),
    st.lists(st.binary(min_size=1, max_size=64).map(lambda b: b.replace(b"\x7e", b"")), max_size=6),
)
def test_garbage_between_frames_costs_no_good_frame(
    items: list[tuple[Body, int | None]], noise: list[bytes]
) -> None:
    frames = frames_of(items)
    wire = b"".join(f + (noise[i] if i < len(noise) else b"") for i, f in enumerate(frames))
    out = FrameReader().feed(b"\x13\x37" + wire, 0.0)
    good = [e.body.encode(None) for e in out if isinstance(e, Frame)]
    assert good == [body.encode(None) for body, _ in items]
    bad = [e for e in out if isinstance(e, BadFrame)]
    assert all(e.reason in BAD_FRAME_REASONS for e in bad)
    assert len(bad) >= 1  # the leading noise at least


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=600), max_size=8))
def test_arbitrary_bytes_never_raise(chunks: list[bytes]) -> None:
    reader = FrameReader(max_frame=512)
    for chunk in chunks:
        for event in reader.feed(chunk, 0.0):
            assert isinstance(event, Frame | BadFrame)
            if isinstance(event, BadFrame):
                assert event.reason in BAD_FRAME_REASONS
    assert reader.buffered <= 512


@settings(max_examples=100, deadline=None)
@given(
    st.integers(1, 20),  # at most 41 fragments (MAX_PACKETS is 64)
    st.integers(40, 300),
    st.randoms(use_true_random=False),
    st.integers(0, 0xFFFF),  # serials wrap around
)
def test_subpackages_in_any_order_with_repeats_give_the_message_once(
    reports: int, size: int, rnd: random.Random, first_serial: int
) -> None:
    batch = BatchLocation(1, tuple(lock_report(c) for c in range(1, reports + 1)))
    body = batch.encode(None)
    parts = [body[i : i + size] for i in range(0, len(body), size)]
    frames = [
        encode(
            Header(
                0x0704,
                LOCK_PHONE,
                (first_serial + i) & 0xFFFF,
                packet_total=len(parts),
                packet_index=i + 1,
            ),
            RawBody(0x0704, part),
        )
        for i, part in enumerate(parts)
    ]
    order = frames + frames[: len(frames) // 2]  # some sent twice
    rnd.shuffle(order)
    out = FrameReader().feed(b"".join(order), 0.0)
    whole = [e for e in out if isinstance(e, Frame) and e.fragments]
    assert len(whole) == 1
    assert whole[0].body.encode(None) == body
    assert sorted(h.packet_index or 0 for h in whole[0].fragments) == list(range(1, len(parts) + 1))
    assert not [e for e in out if isinstance(e, BadFrame)]


def test_a_frame_longer_than_the_limit_is_dropped_as_oversize() -> None:
    big = Transparent(0xF1, bytes(900))
    frame = encode(Header(big.MSG_ID, LOCK_PHONE, 1), big)
    reader = FrameReader(max_frame=256)
    out = reader.feed(frame + encode(Header(2, LOCK_PHONE, 2), Heartbeat()), 0.0)
    assert [e.reason for e in out if isinstance(e, BadFrame)] == ["oversize"]
    assert [e.body for e in out if isinstance(e, Frame)] == [Heartbeat()]


def test_a_location_survives_the_round_trip() -> None:
    report = lock_report(5)
    out = FrameReader().feed(encode(Header(0x0200, LOCK_PHONE, 9), report), 0.0)
    assert isinstance(out[0], Frame) and isinstance(out[0].body, Location)
    block = out[0].body.bondwatch
    assert block is not None and block.lock_id == "EL-CELL-1" and block.report_counter == 5

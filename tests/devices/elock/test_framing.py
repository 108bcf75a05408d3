"""Escaping, check code and stream splitting."""

from __future__ import annotations

import re

import pytest

from devices.elock.framing import FrameSplitter, escape, unescape, unwrap, wrap, xor_check
from devices.errors import FrameError


def test_escape_both_special_bytes() -> None:
    assert escape(b"\x30\x7e\x08\x7d\x55") == b"\x30\x7d\x02\x08\x7d\x01\x55"


def test_unescape_is_a_state_machine_not_chained_replace() -> None:
    # 7D 01 02 is an escaped 7D followed by the data byte 02, never 7E.
    assert unescape(b"\x7d\x01\x02") == b"\x7d\x02"
    chained = b"\x7d\x01\x02".replace(b"\x7d\x01", b"\x7d").replace(b"\x7d\x02", b"\x7e")
    assert chained == b"\x7e"  # the trap the state machine avoids


@pytest.mark.parametrize(
    ("wire", "reason"),
    [
        (b"\x01\x7d\x03", "bad escape sequence 7D 03 at content offset 1"),
        (b"\x01\x7d", "lone 7D"),
        (b"\x01\x7e\x02", "unescaped 0x7E inside the frame at content offset 1"),
    ],
)
def test_bad_escapes_are_precise(wire: bytes, reason: str) -> None:
    with pytest.raises(FrameError, match=reason):
        unescape(wire)


def test_check_code_is_xor_of_header_and_body() -> None:
    content = bytes.fromhex("0002000004304832546500b7")
    assert xor_check(content) == 0xCA  # the real heartbeat frame 7E 0002 … B7 CA 7E, header only
    frame = wrap(content)
    assert unwrap(frame) == (content, 0xCA, 0xCA)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "empty input"),
        (b"\x28\x7e", "starts with 0x28 '('"),
        (b"\x7e\x01\x02", "no closing 0x7E"),
        (b"\x7e\x7e", "nothing between them"),
    ],
)
def test_outer_form_errors(raw: bytes, reason: str) -> None:
    with pytest.raises(FrameError, match=re.escape(reason)) as caught:
        unwrap(raw)
    assert caught.value.raw == raw


def test_splitter_resynchronises_after_garbage() -> None:
    a = wrap(b"\x00\x02\x00\x00" + bytes(6) + b"\x00\x01")
    b = wrap(b"\x00\x02\x00\x00" + bytes(6) + b"\x00\x02")
    stream = b"junk" + a + b"\x11\x7e\x22\x33" + b + a[:5]
    splitter = FrameSplitter()
    out = list(splitter.feed(stream[:7])) + list(splitter.feed(stream[7:]))
    assert a in out
    assert b in out
    assert out[0] == a
    assert out[-1] == b
    assert splitter.discarded_bytes == 4
    # the rest of the half frame completes it
    assert list(splitter.feed(a[5:])) == [a]


def test_splitter_drops_overlong_garbage() -> None:
    splitter = FrameSplitter(max_frame=10)
    assert list(splitter.feed(b"\x7e" + bytes(50))) == []
    frame = wrap(bytes(6))
    assert list(splitter.feed(frame)) == [frame]

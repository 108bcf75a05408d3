"""CASIC and u-blox UBX binary frames in the NMEA stream: skipped, and no sentence around
them lost (the fixes are those of the same stream without the frames)."""

from __future__ import annotations

import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from devices.gnss.codec import GnssFix, NmeaStreamDecoder, encode_sentence
from tests.devices.gnss.binary_frames import (
    casic_frame,
    casic_nav_pv,
    casic_text_payload,
    ubx_frame,
)


def epoch_sentences(second: int) -> list[bytes]:
    """The sentences of one second of a GPS+BeiDou receiver, each with its CR LF."""
    t = f"0815{second:02d}.00"
    lat = f"2232.{1234 + second:04d}"
    bodies = [
        f"GNRMC,{t},A,{lat},N,11403.5678,E,10.0,90.0,231126,,,A,V",
        "GNVTG,90.0,T,,M,10.0,N,18.5,K,A",
        f"GNGGA,{t},{lat},N,11403.5678,E,1,14,0.9,35.2,M,-3.0,M,,",
        "GNGSA,A,3,01,02,03,04,05,,,,,,,,1.5,0.9,1.2,1",
        "GNGSA,A,3,201,202,203,,,,,,,,,,1.5,0.9,1.2,4",
        "BDGSV,1,1,03,01,40,120,40,02,30,200,35,03,10,300,30",
    ]
    return [encode_sentence(b).encode() for b in bodies]


SECONDS = range(6)
SENTENCES = [s for second in SECONDS for s in epoch_sentences(second)]
CLEAN = b"".join(SENTENCES)


def decode(data: bytes, chunk: int | None = None) -> tuple[list[GnssFix], NmeaStreamDecoder]:
    dec = NmeaStreamDecoder()
    fixes: list[GnssFix] = []
    step = chunk or len(data) or 1
    for i in range(0, len(data), step):
        fixes += dec.feed(data[i : i + step])
    return fixes + dec.flush(), dec


def with_frames(frames: dict[int, bytes]) -> bytes:
    """CLEAN with `frames[i]` put before sentence i (len(SENTENCES): after the last)."""
    out = bytearray()
    for i, sentence in enumerate(SENTENCES):
        out += frames.get(i, b"") + sentence
    return bytes(out + frames.get(len(SENTENCES), b""))


CLEAN_FIXES, CLEAN_DEC = decode(CLEAN)


def test_the_clean_stream_gives_one_fix_per_second() -> None:
    assert len(CLEAN_FIXES) == len(SECONDS)
    assert all(f.mode == 3 and f.receiver_valid for f in CLEAN_FIXES)
    assert CLEAN_DEC.stats.sentences == len(SENTENCES)


def test_casic_frame_layout() -> None:
    frame = casic_frame(0x05, 0x01, bytes([0x06, 0x01, 0x00, 0x00]))  # ACK-ACK of CFG-MSG
    assert frame[:2] == b"\xba\xce"
    assert struct.unpack("<H", frame[2:4]) == (4,)
    assert frame[4:6] == b"\x05\x01"
    assert struct.unpack("<I", frame[-4:]) == (((0x01 << 24) + (0x05 << 16) + 4 + 0x0106),)
    assert len(casic_nav_pv(22.5, 114.0, 5.0, 90.0)) == 6 + 80 + 4


def test_casic_frames_between_sentences_cost_no_sentence() -> None:
    nav = casic_nav_pv(22.535, 114.059, 2.78, 90.0)
    # MON-VER-like text inside a frame, with a `$`, a `*` and a CR LF in it
    text = casic_frame(0x0A, 0x04, casic_text_payload(b"$GNTXT,SW=V5.3.0.0*00\r\nHW=AT6558"))
    # CASIC output every second, before the RMC, and frames between other sentences
    frames = {6 * s: nav + text for s in SECONDS} | {3: nav, 16: text, len(SENTENCES): nav}
    fixes, dec = decode(with_frames(frames))
    assert fixes == CLEAN_FIXES
    assert dec.stats.sentences == len(SENTENCES)
    assert dec.stats.fixes == len(SECONDS)
    # the text inside the frame looked like a sentence and was rejected, not used
    assert dec.stats.bad_checksum == len(SECONDS) + 1
    # the frames were counted as skipped binary (all but the pseudo-sentence and the
    # CR/LF bytes, which the count leaves out)
    binary = sum(len(f) for f in frames.values())
    pseudo = len(b"$GNTXT,SW=V5.3.0.0*00") * (len(SECONDS) + 1)
    assert 0.95 * (binary - pseudo) <= dec.stats.binary_bytes_skipped <= binary - pseudo


def test_casic_frames_fed_byte_by_byte_give_the_same_fixes() -> None:
    nav = casic_nav_pv(-33.86, 151.21, 0.0, 0.0)
    data = with_frames({6 * s + 2: nav for s in SECONDS})
    assert decode(data, chunk=1)[0] == CLEAN_FIXES
    assert decode(data, chunk=7)[0] == CLEAN_FIXES


def test_frame_glued_to_the_sentences_without_line_ends() -> None:
    # No CR LF between a sentence and the frame, nor between the frame and the next.
    nav = casic_nav_pv(22.535, 114.059, 2.78, 90.0)
    glued = bytearray()
    for sentence in SENTENCES:
        glued += sentence.rstrip(b"\r\n") + nav
    fixes, dec = decode(bytes(glued))
    assert fixes == CLEAN_FIXES
    assert dec.stats.sentences == len(SENTENCES)


def test_ubx_frames_between_sentences_cost_no_sentence() -> None:
    # NAV-PVT-sized packet with a `$` and text in its payload. With UBX in the
    # stream gpsd (its u-blox driver) reports from the second epoch on; so does the
    # decoder. Every later fix is the clean stream's.
    payload = bytes(range(40)) + b"$GPGGA,fake*7E\r\n" + bytes(range(200, 244))
    pvt = ubx_frame(0x01, 0x07, payload)
    assert len(pvt) == 8 + 100
    fixes, dec = decode(with_frames({6 * s: pvt for s in SECONDS}))
    assert fixes == CLEAN_FIXES[1:]
    assert dec.stats.sentences == len(SENTENCES)
    assert dec.stats.bad_checksum == len(SECONDS)  # the fake sentence, once per frame


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.integers(min_value=0, max_value=len(SENTENCES)),
        st.tuples(
            st.integers(0, 255),
            st.integers(0, 255),
            st.binary(max_size=160).map(lambda b: b + b"\x00" * (-len(b) % 4)),
        ),
        max_size=12,
    ),
    st.sampled_from([None, 1, 5, 64]),
)
def test_any_casic_frames_anywhere_between_sentences_cost_no_fix(
    placed: dict[int, tuple[int, int, bytes]], chunk: int | None
) -> None:
    frames = {i: casic_frame(cls, msg_id, payload) for i, (cls, msg_id, payload) in placed.items()}
    fixes, dec = decode(with_frames(frames), chunk)
    assert fixes == CLEAN_FIXES
    assert dec.stats.sentences == len(SENTENCES)


def test_ubx_fed_byte_by_byte_is_recognised_too() -> None:
    pvt = ubx_frame(0x01, 0x07, bytes(range(100, 192)))
    data = with_frames({6 * s: pvt for s in SECONDS})
    assert decode(data, chunk=1)[0] == CLEAN_FIXES[1:]
    assert decode(data, chunk=13)[0] == CLEAN_FIXES[1:]


def test_ubx_sync_bytes_in_other_binary_are_not_taken_for_ubx() -> None:
    # `B5 62` inside a CASIC payload (any float may hold it), and a UBX-like packet
    # whose checksum is wrong: neither is a UBX packet, as gpsd's packet reader sees
    # it, so the first epoch is reported as in a plain NMEA stream.
    casic = casic_frame(0x01, 0x03, b"\x00\xb5\x62\x00" * 20)
    broken = bytearray(ubx_frame(0x01, 0x07, bytes(92)))
    broken[-1] ^= 0xFF
    for frame in (casic, bytes(broken)):
        fixes, dec = decode(with_frames({0: frame, 6: frame}))
        assert fixes == CLEAN_FIXES
        assert dec.stats.sentences == len(SENTENCES)

"""Binary packets of any protocol, known or not, never swallow the NMEA around them.

The stream is a real u-blox 8 log (`ublox-8.log` from gpsd's regression suite) with
packets put between its sentences: UBX with any class, id and length (lengths that
lie, packets torn off), RTCM 3, SiRF, and garbage with stray `$`, `!`, `*` and CR LF,
all read in arbitrary chunks as a serial port delivers them. Every sentence of the
log must be decoded exactly once and in order: the fixes are those of the log alone.
"""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from devices.errors import ChecksumError, FrameError
from devices.gnss.codec import GnssFix, NmeaStreamDecoder
from devices.gnss.conformance import read_log
from devices.gnss.sentences import parse_sentence
from tests.devices.gnss.binary_frames import (
    rtcm3_frame,
    sirf_frame,
    ubx_frame,
    ubx_header,
    ubx_mon_rxbuf,
    ubx_mon_txbuf,
    ubx_sec_uniqid,
)
from tests.realdata import GPSD_LOGS

LOG = read_log(GPSD_LOGS / "ublox-8.log")


def _valid(line: bytes) -> bool:
    try:
        parse_sentence(line.rstrip(b"\r\n"))
    except (ChecksumError, FrameError):
        return False
    return True


#: The log's valid sentences, each with its CR LF (it holds one cut-off line).
LINES = [line for line in LOG.splitlines(keepends=True) if line.endswith(b"\r\n") and _valid(line)]
#: A u-blox receiver's stream holds UBX packets from its first byte: gpsd then runs its
#: u-blox driver, which reports the first epoch differently (docs/gnss.md, rule 3).
#: Both the clean and the mixed streams start with one, so they compare epoch by epoch.
PRELUDE = ubx_mon_rxbuf(0, 0)


def decode(data: bytes, chunks: list[int] | None = None) -> tuple[list[GnssFix], NmeaStreamDecoder]:
    """Decode `data` read in pieces of the sizes `chunks` (cycled), or whole."""
    dec = NmeaStreamDecoder()
    fixes: list[GnssFix] = []
    sizes = chunks or [len(data) or 1]
    pos = i = 0
    while pos < len(data):
        size = sizes[i % len(sizes)]
        fixes += dec.feed(data[pos : pos + size])
        pos += size
        i += 1
    return fixes + dec.flush(), dec


def mixed(packets: dict[int, bytes], lines: list[bytes] = LINES) -> bytes:
    """PRELUDE, then the log's sentences with `packets[i]` put before sentence i."""
    out = bytearray(PRELUDE)
    for i, line in enumerate(lines):
        out += packets.get(i, b"") + line
    return bytes(out + packets.get(len(lines), b""))


CLEAN_FIXES, CLEAN_DEC = decode(mixed({}))
SHORT = LINES[:120]  # ~9 s of the log, for the property tests
SHORT_FIXES, SHORT_DEC = decode(mixed({}, SHORT))


def test_the_clean_log_gives_its_fixes() -> None:
    assert CLEAN_DEC.stats.sentences == len(LINES) > 900
    assert sum(f.mode >= 2 for f in CLEAN_FIXES) >= 70
    assert SHORT_DEC.stats.sentences == len(SHORT)
    assert sum(f.mode >= 2 for f in SHORT_FIXES) >= 7


# ------------------------------------------------- the packets of the log


def test_mon_rxbuf_txbuf_and_sec_uniqid_between_every_sentence_cost_nothing() -> None:
    rng = random.Random(8)
    packets = {}
    for i in range(len(LINES) + 1):
        kind = i % 3
        if kind == 0:
            packets[i] = ubx_mon_rxbuf(rng.randrange(0x10000), rng.randrange(100))
        elif kind == 1:
            packets[i] = ubx_mon_txbuf(rng.randrange(0x10000), rng.randrange(100))
        else:
            packets[i] = ubx_sec_uniqid(rng.randbytes(5))
    data = mixed(packets)
    for chunks in (None, [1], [7], [64], [4096], [3, 50, 1, 511]):
        fixes, dec = decode(data, chunks)
        assert fixes == CLEAN_FIXES, chunks
        assert dec.stats.sentences == len(LINES), chunks
    # all three packets, back to back, in every gap
    together = {
        i: ubx_mon_rxbuf(i, 40) + ubx_mon_txbuf(i, 12) + ubx_sec_uniqid(b"\x12\x34\x56\x78\x9a")
        for i in range(len(LINES) + 1)
    }
    fixes, dec = decode(mixed(together), [13])
    assert fixes == CLEAN_FIXES
    assert dec.stats.sentences == len(LINES)


def test_packets_glued_to_the_sentences_without_line_ends() -> None:
    # No CR LF between a sentence and the packet after it: the sentence ends at *HH.
    glued = bytearray(PRELUDE)
    for i, line in enumerate(LINES):
        glued += line.rstrip(b"\r\n") + ubx_mon_txbuf(i, 7) + b"junk" + ubx_sec_uniqid(b"ABCDE")
    fixes, dec = decode(bytes(glued), [5])
    assert fixes == CLEAN_FIXES
    assert dec.stats.sentences == len(LINES)


def test_lengths_that_lie_cost_only_their_own_bytes() -> None:
    # A header claiming 65535 bytes (or 1000) followed at once by the next sentence,
    # a header cut after its sync, and a whole packet of an unknown class.
    liars = {
        3: ubx_header(0x0A, 0x07, 0xFFFF) + b"\x01\x02",
        4: ubx_header(0x27, 0x03, 1000),
        5: b"\xb5\x62",
        6: b"\xb5",
        7: ubx_frame(0xF7, 0x99, bytes(range(256)) * 2),
        8: ubx_header(0x01, 0x07, 92) + b"$GPGGA,12" + b"\r\n",
    }
    data = mixed(liars)
    for chunks in (None, [1], [6], [2, 9]):
        fixes, dec = decode(data, chunks)
        assert fixes == CLEAN_FIXES, chunks
        assert dec.stats.sentences == len(LINES), chunks


def test_a_sentence_with_a_bad_checksum_is_dropped_alone() -> None:
    broken = list(LINES)
    victim = 20
    line = bytearray(broken[victim])
    line[10] ^= 0x01  # one bit flipped in the body: the checksum no longer matches
    broken[victim] = bytes(line)
    fixes, dec = decode(mixed({victim: ubx_mon_rxbuf(1, 2), victim + 1: b"\xd3\x00"}, broken))
    assert dec.stats.sentences == len(LINES) - 1
    assert dec.stats.bad_checksum == 1
    alone, _ = decode(mixed({}, broken))
    assert fixes == alone


# --------------------------------------------------------- any packet, anywhere

_STRAY = st.sampled_from(
    [b"$", b"!", b"*", b"\r\n", b"\r", b"\n", b"*7E", b"$GP", b"$GPGGA,", b"!AIVDM", b",*", b"\x00"]
)
_GARBAGE = st.lists(st.one_of(st.binary(max_size=24), _STRAY), max_size=8).map(b"".join)


@st.composite
def _ubx(draw: st.DrawFn) -> bytes:
    cls, msg_id = draw(st.integers(0, 255)), draw(st.integers(0, 255))
    payload = draw(st.binary(max_size=120))
    frame = ubx_frame(cls, msg_id, payload)
    how = draw(st.sampled_from(["whole", "bad checksum", "lying length", "torn"]))
    if how == "bad checksum":
        return frame[:-1] + bytes([frame[-1] ^ 0x5A])
    if how == "lying length":
        claimed = draw(st.integers(0, 0xFFFF))
        return ubx_header(cls, msg_id, claimed) + payload
    if how == "torn":
        return frame[: draw(st.integers(1, len(frame)))]
    return frame


_PACKET = st.one_of(
    _ubx(),
    st.binary(max_size=200).map(rtcm3_frame),
    st.binary(max_size=200).map(sirf_frame),
    _GARBAGE,
)


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(st.integers(0, len(SHORT)), _PACKET, max_size=25),
    st.lists(st.integers(1, 300), min_size=1, max_size=12),
)
def test_any_binary_anywhere_read_in_any_chunks_costs_no_sentence(
    packets: dict[int, bytes], chunks: list[int]
) -> None:
    fixes, dec = decode(mixed(packets, SHORT), chunks)
    assert dec.stats.sentences == len(SHORT)
    assert fixes == SHORT_FIXES


@settings(max_examples=150, deadline=None)
@given(
    st.dictionaries(st.integers(1, len(SHORT) - 1), _PACKET, max_size=25),
    st.lists(st.integers(1, 300), min_size=1, max_size=12),
)
def test_packets_glued_to_sentences_without_line_ends_cost_no_sentence(
    packets: dict[int, bytes], chunks: list[int]
) -> None:
    # The packet before sentence i takes the place of the CR LF of sentence i - 1.
    out = bytearray(PRELUDE)
    for i, line in enumerate(SHORT):
        packet = packets.get(i + 1, b"")
        out += line.rstrip(b"\r\n") + packet if packet else line
    fixes, dec = decode(bytes(out), chunks)
    assert dec.stats.sentences == len(SHORT)
    assert fixes == SHORT_FIXES

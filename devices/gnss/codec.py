"""NMEA 0183 stream → GNSS fixes (pure: bytes in, `GnssFix` out; no I/O, no clocks).

`NmeaStreamDecoder.feed()` takes bytes in any chunking. It frames sentences out of
the stream (skipping binary packets such as u-blox UBX, CASIC or SiRF mixed into
it), rejects every sentence whose checksum is wrong or missing, and merges the
sentences of one epoch (same UTC time of day) into one `GnssFix`, emitted when the
next epoch starts (or at `flush()`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from devices.errors import ChecksumError, FrameError
from devices.gnss.sentences import (
    SYSTEM_IDS,
    SYSTEM_ORDER,
    TALKER_SYSTEMS,
    Sentence,
    encode_sentence,
    parse_sentence,
    system_of_prn,
    to_degrees,
    to_float,
    to_int,
    to_time_of_day,
)
from devices.gnss.sentences import field as fld

__all__ = ["DecoderStats", "GnssFix", "NmeaStreamDecoder", "encode_sentence"]

KNOT_MPS = 1852.0 / 3600.0
#: Longest sentence accepted. The standard says 82 characters; real receivers send
#: longer ones (u-blox PUBX, Quectel PQ, GSA with many satellites), so allow plenty.
MAX_SENTENCE_LEN = 1024

_START = re.compile(rb"[$!]")
_BODY = re.compile(rb"[$!][^$!\x00-\x1f\x7f-\xff]*")
_POSITION_KINDS = frozenset({"GGA", "RMC", "GNS", "GLL"})
_TIMED_KINDS = frozenset({"GGA", "RMC", "GNS", "GLL", "ZDA"})
_KNOWN_KINDS = frozenset({"GGA", "RMC", "GNS", "GLL", "GSA", "GSV", "VTG", "ZDA"})


@dataclass(frozen=True)
class GnssFix:
    """The receiver's solution for one epoch. `mode` 1 = no fix (position None)."""

    time: datetime | None
    lat: float | None
    lon: float | None
    alt_m: float | None
    speed_mps: float | None
    course_deg: float | None
    mode: int
    sats_used: int | None
    sats_by_system: dict[str, int]
    hdop: float | None
    systems: tuple[str, ...]


@dataclass
class DecoderStats:
    """Counters of what the decoder saw; never reset by the decoder."""

    sentences: int = 0
    bad_checksum: int = 0
    missing_checksum: int = 0
    malformed: int = 0
    unknown: int = 0
    binary_bytes_skipped: int = 0
    fixes: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


@dataclass
class _Epoch:
    """Everything learned from the sentences of one epoch so far."""

    tod: tuple[int, int, int, int] | None = None
    timed: bool = False
    seen: set[tuple[str, str]] = field(default_factory=set)
    last_key: tuple[str, str] | None = None
    has_position_sentence: bool = False
    valid: bool = False
    invalid: bool = False
    lat: float | None = None
    lon: float | None = None
    alt_m: float | None = None
    speed_mps: float | None = None
    course_deg: float | None = None
    hdop: float | None = None
    sats_used: int | None = None
    gsa_mode: int | None = None
    sats_by_system: dict[str, set[int]] = field(default_factory=dict)
    systems: set[str] = field(default_factory=set)
    day: date | None = None


def _cycle_key(sentence: Sentence) -> tuple[str, str] | None:
    """What identifies a sentence as a candidate end of an epoch (GSV: its last part)."""
    if sentence.kind not in _KNOWN_KINDS:
        return None
    if sentence.kind == "GSV":
        total, number = to_int(fld(sentence.fields, 0)), to_int(fld(sentence.fields, 1))
        if total is None or number != total:
            return None
    return (sentence.talker, sentence.kind)


class NmeaStreamDecoder:
    """Streaming NMEA 0183 decoder: `feed(bytes)` → fixes of the epochs that ended."""

    def __init__(self) -> None:
        self.stats = DecoderStats()
        self._buffer = bytearray()
        self._epoch = _Epoch()
        self._day: date | None = None
        self._last_tod: tuple[int, int, int, int] | None = None
        # The sentence that ends each epoch of this receiver, learnt from the stream
        # (gpsd calls it the cycle ender): once known, an epoch is emitted as soon as
        # its last sentence arrives instead of when the next epoch starts.
        self._ender: tuple[str, str] | None = None

    # ----------------------------------------------------------------- framing
    def feed(self, data: bytes) -> list[GnssFix]:
        """Decode `data` (any chunk of the stream); return the fixes of completed epochs."""
        self._buffer += data
        out: list[GnssFix] = []
        self._frame(out, final=False)
        return out

    def flush(self) -> list[GnssFix]:
        """End of input: decode what is left and emit the last epoch, unless it was cut
        off before the sentence that ends this receiver's epochs."""
        out: list[GnssFix] = []
        self._frame(out, final=True)
        self._close_epoch(out, complete=self._ender is None)
        return out

    def _frame(self, out: list[GnssFix], final: bool) -> None:
        buf = self._buffer
        pos = 0
        size = len(buf)
        while pos < size:
            start_match = _START.search(buf, pos)
            if start_match is None:
                self._skip(buf, pos, size)
                pos = size
                break
            start = start_match.start()
            if start > pos:
                self._skip(buf, pos, start)
            body = _BODY.match(buf, start)
            assert body is not None  # the start character always matches
            end = body.end()
            if end == size and not final:
                if end - start > MAX_SENTENCE_LEN:
                    self.stats.malformed += 1
                    pos = end
                    continue
                pos = start  # wait for the rest of this sentence
                break
            line = bytes(buf[start:end])
            terminator = buf[end] if end < size else None
            if terminator in (0x0D, 0x0A, 0x24, 0x21, None) or b"*" in line:
                self._handle_line(line, out)
            else:
                # A `$` inside a binary packet: not a sentence, just bytes.
                self.stats.binary_bytes_skipped += len(line)
            pos = end
        del buf[:pos]

    def _skip(self, buf: bytearray, start: int, end: int) -> None:
        chunk = buf[start:end]
        noise = len(chunk) - chunk.count(b"\r") - chunk.count(b"\n")
        self.stats.binary_bytes_skipped += noise

    def _handle_line(self, line: bytes, out: list[GnssFix]) -> None:
        if len(line) > MAX_SENTENCE_LEN:
            self.stats.malformed += 1
            return
        try:
            sentence = parse_sentence(line)
        except ChecksumError as err:
            if b"*" in line:
                self.stats.bad_checksum += 1
            else:
                self.stats.missing_checksum += 1
            del err
            return
        except FrameError:
            self.stats.malformed += 1
            return
        self.stats.sentences += 1
        if sentence.talker == "P" or sentence.kind not in _KNOWN_KINDS:
            self.stats.unknown += 1
            return
        try:
            self._apply(sentence, out)
        except (ValueError, OverflowError):
            self.stats.malformed += 1
            return
        key = _cycle_key(sentence)
        if key is None:
            return
        self._epoch.last_key = key
        if key == self._ender and self._epoch.timed:
            self._close_epoch(out, complete=True)

    # ------------------------------------------------------------- epochs
    def _apply(self, s: Sentence, out: list[GnssFix]) -> None:
        f = s.fields
        kind = s.kind
        if kind in _TIMED_KINDS:
            tod_text = fld(f, 4) if kind == "GLL" else fld(f, 0)
            tod = to_time_of_day(tod_text)
            if kind == "GLL" and len(f) < 6:
                self.stats.malformed += 1
                return
            self._enter_epoch(s, tod, out)
        epoch = self._epoch
        system = TALKER_SYSTEMS.get(s.talker)
        if kind == "GGA":
            if len(f) < 9:
                self.stats.malformed += 1
                return
            quality = to_int(fld(f, 5))
            lat, lon = to_degrees(fld(f, 1), fld(f, 2), 90), to_degrees(fld(f, 3), fld(f, 4), 180)
            self._position(epoch, "GGA", lat, lon, quality is not None and quality > 0)
            if quality is not None and quality > 0:
                epoch.alt_m = to_float(fld(f, 8)) if epoch.alt_m is None else epoch.alt_m
                epoch.sats_used = to_int(fld(f, 6))
                epoch.hdop = to_float(fld(f, 7)) or epoch.hdop
        elif kind == "RMC":
            if len(f) < 9:
                self.stats.malformed += 1
                return
            status = fld(f, 1)
            mode = fld(f, 11)
            ok = status == "A" and mode != "N"
            lat, lon = to_degrees(fld(f, 2), fld(f, 3), 90), to_degrees(fld(f, 4), fld(f, 5), 180)
            self._position(epoch, "RMC", lat, lon, ok)
            self._date_ddmmyy(fld(f, 8))
            if ok:
                knots = to_float(fld(f, 6))
                if knots is not None and epoch.speed_mps is None:
                    epoch.speed_mps = knots * KNOT_MPS
                course = to_float(fld(f, 7))
                if course is not None and epoch.course_deg is None:
                    epoch.course_deg = course
        elif kind == "GNS":
            if len(f) < 9:
                self.stats.malformed += 1
                return
            modes = fld(f, 5)
            ok = bool(modes) and any(c not in "N" for c in modes)
            lat, lon = to_degrees(fld(f, 1), fld(f, 2), 90), to_degrees(fld(f, 3), fld(f, 4), 180)
            self._position(epoch, "GNS", lat, lon, ok)
            if ok:
                if epoch.alt_m is None:
                    epoch.alt_m = to_float(fld(f, 8))
                if epoch.sats_used is None:
                    epoch.sats_used = to_int(fld(f, 6))
                if epoch.hdop is None:
                    epoch.hdop = to_float(fld(f, 7))
        elif kind == "GLL":
            ok = fld(f, 5) == "A" and fld(f, 6) != "N"
            lat, lon = to_degrees(fld(f, 0), fld(f, 1), 90), to_degrees(fld(f, 2), fld(f, 3), 180)
            self._position(epoch, "GLL", lat, lon, ok)
        elif kind == "GSA":
            self._gsa(s, epoch)
        elif kind == "VTG":
            course = to_float(fld(f, 0))
            knots = to_float(fld(f, 4))
            kmh = to_float(fld(f, 6))
            if fld(f, 8) != "N":
                if epoch.course_deg is None and course is not None:
                    epoch.course_deg = course
                if epoch.speed_mps is None:
                    if kmh is not None:
                        epoch.speed_mps = kmh / 3.6
                    elif knots is not None:
                        epoch.speed_mps = knots * KNOT_MPS
        elif kind == "ZDA":
            day, month, year = to_int(fld(f, 1)), to_int(fld(f, 2)), to_int(fld(f, 3))
            if day and month and year and year >= 1980:
                try:
                    epoch.day = date(year, month, day)
                except ValueError:
                    self.stats.malformed += 1
        if system is not None and kind in _POSITION_KINDS:
            epoch.systems.add(system)

    def _position(
        self, epoch: _Epoch, kind: str, lat: float | None, lon: float | None, ok: bool
    ) -> None:
        epoch.has_position_sentence = True
        if not ok:
            epoch.invalid = True
            return
        if lat is None or lon is None:
            return
        epoch.valid = True
        # The latest position of the epoch wins (as in gpsd): receivers that send
        # GGA and GLL with different roundings report the later one.
        epoch.lat, epoch.lon = lat, lon

    def _gsa(self, s: Sentence, epoch: _Epoch) -> None:
        f = s.fields
        mode = to_int(fld(f, 1))
        if mode in (1, 2, 3):
            epoch.gsa_mode = max(mode, epoch.gsa_mode or 0)
        id_text = fld(f, 17)  # NMEA 4.10 system id; some receivers put a float here
        system_id = int(id_text, 16) if len(id_text) == 1 and id_text.isalnum() else None
        system = SYSTEM_IDS.get(system_id) if system_id is not None else None
        if system is None:
            system = TALKER_SYSTEMS.get(s.talker)
        for text in f[2:14]:
            prn = to_int(text.strip())
            if prn is None or prn <= 0:
                continue
            name = system or system_of_prn(prn, s.talker)
            if name is not None:
                epoch.sats_by_system.setdefault(name, set()).add(prn)
        if epoch.hdop is None:
            epoch.hdop = to_float(fld(f, 15))

    def _date_ddmmyy(self, text: str) -> None:
        if len(text) != 6 or not text.isdigit():
            return
        day, month, yy = int(text[0:2]), int(text[2:4]), int(text[4:6])
        year = 2000 + yy if yy < 80 else 1900 + yy
        try:
            self._epoch.day = date(year, month, day)
        except ValueError:
            self.stats.malformed += 1

    def _enter_epoch(
        self, s: Sentence, tod: tuple[int, int, int, int] | None, out: list[GnssFix]
    ) -> None:
        epoch = self._epoch
        key = (s.talker, s.kind)
        new_epoch = False
        if epoch.timed:
            if tod != epoch.tod:
                new_epoch = True
            elif s.kind in _POSITION_KINDS and key in epoch.seen:
                new_epoch = True  # a second GGA (say) with no end of epoch between
        if new_epoch:
            if epoch.last_key is not None and epoch.has_position_sentence:
                self._ender = epoch.last_key
            self._close_epoch(out)
            epoch = self._epoch
        if not epoch.timed:
            epoch.timed = True
            epoch.tod = tod
        epoch.seen.add(key)

    def _close_epoch(self, out: list[GnssFix], complete: bool = True) -> None:
        epoch = self._epoch
        self._epoch = _Epoch()
        if epoch.day is not None:
            self._day = epoch.day
            self._last_tod = None
        if not epoch.has_position_sentence or not complete:
            return
        stamp = self._stamp(epoch.tod)
        valid = epoch.valid and epoch.lat is not None
        by_system = {name: len(prns) for name, prns in epoch.sats_by_system.items()}
        systems = set(epoch.systems) | {n for n, c in by_system.items() if c}
        systems.discard("SBAS")
        ordered = tuple(n for n in SYSTEM_ORDER if n in systems)
        if not valid:
            fix = GnssFix(stamp, None, None, None, None, None, 1, None, {}, None, ordered)
        else:
            if epoch.gsa_mode in (2, 3):
                mode = epoch.gsa_mode
            else:
                mode = 3 if epoch.alt_m is not None else 2
            sats = epoch.sats_used
            if sats is None and by_system:
                sats = sum(by_system.values())
            fix = GnssFix(
                time=stamp,
                lat=epoch.lat,
                lon=epoch.lon,
                alt_m=epoch.alt_m if mode == 3 else None,
                speed_mps=epoch.speed_mps,
                course_deg=epoch.course_deg,
                mode=mode,
                sats_used=sats,
                sats_by_system=by_system,
                hdop=epoch.hdop,
                systems=ordered,
            )
        self.stats.fixes += 1
        out.append(fix)

    def _stamp(self, tod: tuple[int, int, int, int] | None) -> datetime | None:
        """Date the epoch's time of day with the last known date (rolling at midnight)."""
        if tod is None:
            return None
        if self._day is None:
            self._last_tod = tod
            return None
        if self._last_tod is not None and tod < self._last_tod:
            # Time of day went backwards: past midnight if it was a big step back.
            last = self._last_tod
            back = (last[0] * 3600 + last[1] * 60 + last[2]) - (
                tod[0] * 3600 + tod[1] * 60 + tod[2]
            )
            if back > 12 * 3600:
                self._day = self._day + timedelta(days=1)
        self._last_tod = tod
        hour, minute, second, micro = tod
        extra = 0
        if second == 60:  # a leap second: keep it inside the minute
            second, micro, extra = 59, 999999, 0
        return datetime.combine(
            self._day, time(hour, minute, second, micro), tzinfo=UTC
        ) + timedelta(seconds=extra)

"""NMEA 0183 stream → GNSS fixes (pure: bytes in, `GnssFix` out; no I/O, no clocks).

`NmeaStreamDecoder.feed()` takes bytes in any chunking. It frames sentences out of
the stream (skipping binary packets such as u-blox UBX, CASIC or SiRF mixed into
it), rejects every sentence whose checksum is wrong or missing, and merges the
sentences of one epoch (reporting cycle) into one `GnssFix`.

Which epochs give a fix, with which position and time, follows the rules gpsd (the
reference daemon) uses to report, described in its driver_nmea0183.c: a new time of
day starts a cycle; the kind of the last timed sentence before that becomes a "cycle
ender" (except when GLL, which may trail its cycle, brings the new time); a timed
cycle ender reports, and so does every untimed sentence after it that changes the fix
until the next timed non-ender; before any ender is known every sentence that sets a
position or fix mode reports; a report is dropped when the latest AIS message since
the last report is half of a message 24 (as gpsd.c does); the fix mode is the one of
the latest sentence that set it (GSA included; a GGA of quality 0 with a position is
a fix, as in gpsd). An epoch gives one `GnssFix`: a fix (mode 2/3) if one of its
reports had one, with the position of the latest such report, else a no-fix (mode 1)
if it was reported at all — and a no-fix, whatever gpsd reported first, if the
receiver declared the epoch invalid (gpsd then ends the cycle with no fix). It is
emitted as soon as the sentence that closes this receiver's epochs arrives (learnt),
else when the next epoch starts or at `flush()`. Where we deliberately differ from
gpsd is listed in docs/gnss.md.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from devices.errors import ChecksumError, FrameError
from devices.gnss.ais import AisTracker
from devices.gnss.binary import UbxFinder
from devices.gnss.sentences import (
    SYSTEM_IDS,
    SYSTEM_ORDER,
    TALKER_SYSTEMS,
    Sentence,
    encode_sentence,
    parse_sentence,
    system_of_prn,
    time_of,
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
#: Sentences gpsd marks "cycle continue": they may come after the timed sentence
#: that ends a cycle (driver_nmea0183.c, nmea_phrase table).
_CONTINUES_CYCLE = frozenset({"GLL"})
_BODY = re.compile(rb"[$!][^$!\x00-\x1f\x7f-\xff]*")
_POSITION_KINDS = frozenset({"GGA", "RMC", "GNS", "GLL"})
_KNOWN_KINDS = frozenset({"GGA", "RMC", "GNS", "GLL", "GSA", "GSV", "VTG", "ZDA", "GBS"})
_AIS_KINDS = frozenset({"VDM", "VDO"})


@dataclass(frozen=True)
class GnssFix:
    """The receiver's solution for one epoch. `mode` 1 = no fix (position None).

    An epoch the receiver declared invalid (GGA quality 0, RMC status V, GSA mode 1,
    ...: docs/gnss.md) is always `mode` 1 without position, even where gpsd first
    reported its position as a fix. `receiver_valid` is True exactly for a 2D/3D fix;
    consumers that keep evidence (the truck agent) treat a fix flagged
    `receiver_valid=False`, whoever built it, as no fix.
    """

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
    receiver_valid: bool = False


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


@dataclass
class _Epoch:
    """Everything learned from the sentences of one epoch (one reporting cycle) so far."""

    tod: tuple[int, int, int, int] | None = None
    has_position_sentence: bool = False
    # The receiver's current verdict, as gpsd keeps it: the position and the mode
    # (1 no fix, 2/3 fix) of the latest sentences that set them.
    lat: float | None = None
    lon: float | None = None
    fix_mode: int | None = None
    # Whether a report point was reached, and the position of the latest one with a fix.
    reported: bool = False
    reported_fix: tuple[float, float] | None = None
    emitted: bool = False
    # A sentence of this epoch said the receiver has no valid fix: RMC status V or FAA
    # mode N, GGA quality 0 or none, GLL status V or mode N, GNS mode N for every system;
    # one without a time, or a GSA mode 1 / VTG mode N, counts once a sentence stamped
    # with this epoch's time follows it.
    declared_invalid: bool = False
    # A GSA mode 1, VTG mode N or time-less GGA/RMC/GLL/GNS without fix came since the
    # last sentence stamped with this epoch's time: it is this epoch's only if another
    # such sentence follows (else it may be the next epoch's, as when a receiver loses
    # lock).
    pending_invalid: bool = False
    alt_m: float | None = None
    speed_mps: float | None = None
    course_deg: float | None = None
    hdop: float | None = None
    sats_used: int | None = None
    gsa_mode: int | None = None
    sats_by_system: dict[str, set[int]] = field(default_factory=dict)
    systems: set[str] = field(default_factory=set)
    day: date | None = None


@dataclass(frozen=True, slots=True)
class _Effect:
    """What one sentence says about the fix, in gpsd's terms: the position it sets
    (None: none) and the fix mode it sets (1 no fix, 2 fix; None: it says nothing)."""

    position: tuple[float, float] | None = None
    mode: int | None = None


_NOTHING = _Effect()


def _seconds(tod: tuple[int, int, int, int]) -> float:
    return tod[0] * 3600 + tod[1] * 60 + tod[2] + tod[3] / 1e6


def _position(lat: str, ns: str, lon: str, ew: str) -> tuple[float, float] | None:
    la, lo = to_degrees(lat, ns, 90), to_degrees(lon, ew, 180)
    if la is None or lo is None:
        return None
    return la, lo


class NmeaStreamDecoder:
    """Streaming NMEA 0183 decoder: `feed(bytes)` → fixes of the epochs that ended."""

    def __init__(self) -> None:
        self.stats = DecoderStats()
        self._buffer = bytearray()
        self._epoch = _Epoch()
        self._day: date | None = None
        self._last_tod: tuple[int, int, int, int] | None = None
        # gpsd's reporting-cycle model (driver_nmea0183.c, "end-of-cycle detector"):
        # the last time of day a sentence registered, the kind of the last sentence
        # that registered one, and the kinds that were last before a time change
        # (the cycle enders), on which a report is made from then on.
        self._registered: float | None = None
        self._last_tag: str | None = None
        self._enders: set[str] = set()
        self._reliable = False
        # Whether the last timed sentence was a cycle ender: gpsd then reports again
        # on every untimed sentence that changes the fix (a GSA after a GGA, ...).
        self._after_ender = False
        # u-blox UBX packets in the stream: gpsd then runs its u-blox driver, which
        # does not report every position sentence before the cycle ender is known.
        # Only a whole packet with a valid checksum counts (devices/gnss/binary.py).
        self._ubx_seen = False
        self._ubx = UbxFinder()
        # AIS mixed into the stream (a marine feed): gpsd drops a report whose pending
        # AIS message is an unpaired half of message 24 (devices/gnss/ais.py).
        self._ais = AisTracker()
        # The time of an RMC V that came before its epoch started (RMC before GGA).
        self._invalid_ahead: float | None = None
        # The sentence that closed the last epochs (any kind, GSV by its last part):
        # once it repeats, an epoch is emitted as soon as it arrives.
        self._last_key: tuple[str, str] | None = None
        self._previous_closer: tuple[str, str] | None = None
        self._closer: tuple[str, str] | None = None

    # ----------------------------------------------------------------- framing
    def feed(self, data: bytes) -> list[GnssFix]:
        """Decode `data` (any chunk of the stream); return the fixes of completed epochs."""
        self._buffer += data
        out: list[GnssFix] = []
        self._frame(out, final=False)
        return out

    def flush(self) -> list[GnssFix]:
        """End of input: decode what is left and emit the last epoch if it was reported
        (an epoch cut off before any report point gives nothing, as in gpsd)."""
        out: list[GnssFix] = []
        self._frame(out, final=True)
        self._close_epoch(out)
        return out

    def _frame(self, out: list[GnssFix], final: bool) -> None:
        """Cut sentences out of the buffer. A sentence is a start character, printable
        ASCII, and ends at its `*HH` (whatever follows: CR LF, binary, garbage) or, when
        it has none, at the first byte that cannot be in a sentence. Anything else is
        skipped byte by byte up to the next start character, so a binary packet costs
        only its own bytes, whatever its framing or claimed length: the decoder never
        jumps over a length field, and a `$`/`!` inside a packet starts at most a
        pseudo-sentence that ends at the packet's next non-printable byte, or at the
        next real sentence's start character."""
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
            star = buf.find(b"*", start, end)
            if 0 <= star <= end - 3:
                end = star + 3  # a complete `*HH`: the sentence ends there
            elif end == size and not final:
                if end - start > MAX_SENTENCE_LEN:
                    self.stats.malformed += 1
                    self._not_nmea(buf[start:end])
                    pos = end
                    continue
                pos = start  # wait for the rest of this sentence
                break
            line = bytes(buf[start:end])
            terminator = buf[end] if end < size else None
            if star >= 0 or terminator in (0x0D, 0x0A, 0x24, 0x21, None):
                if not self._handle_line(line, out):
                    self._not_nmea(line)
            else:
                # A `$` inside a binary packet: not a sentence, just bytes.
                self.stats.binary_bytes_skipped += len(line)
                self._not_nmea(line)
            pos = end
        del buf[:pos]

    def _skip(self, buf: bytearray, start: int, end: int) -> None:
        chunk = buf[start:end]
        noise = len(chunk) - chunk.count(b"\r") - chunk.count(b"\n")
        self.stats.binary_bytes_skipped += noise
        self._not_nmea(chunk)  # CR/LF too: 0x0A/0x0D may be a packet's bytes

    def _not_nmea(self, data: bytes | bytearray) -> None:
        """Bytes between accepted sentences, pseudo-sentences inside packets included:
        the run in which a UBX packet is looked for."""
        if not self._ubx_seen:
            self._ubx_seen = self._ubx.feed(data)

    def _handle_line(self, line: bytes, out: list[GnssFix]) -> bool:
        """Decode one framed line; False if it is no sentence (bad checksum, ...)."""
        if len(line) > MAX_SENTENCE_LEN:
            self.stats.malformed += 1
            return False
        try:
            sentence = parse_sentence(line)
        except ChecksumError:
            if b"*" in line:
                self.stats.bad_checksum += 1
            else:
                self.stats.missing_checksum += 1
            return False
        except FrameError:
            self.stats.malformed += 1
            return False
        self.stats.sentences += 1
        self._ubx.end_run()
        if sentence.kind in _AIS_KINDS and sentence.talker != "P":
            self._ais.feed(sentence.fields)
            return True
        if sentence.talker == "P" or sentence.kind not in _KNOWN_KINDS:
            self.stats.unknown += 1
            return True
        try:
            self._sentence(sentence, out)
        except (ValueError, OverflowError):
            self.stats.malformed += 1
        return True

    # ------------------------------------------------------------- epochs
    def _sentence(self, s: Sentence, out: list[GnssFix]) -> None:
        """One sentence through gpsd's cycle model: a new time of day starts a new
        epoch (and makes the kind of the last timed sentence a cycle ender, unless the
        new time comes from a GLL, which gpsd lets continue the cycle); the sentence's
        data go into the epoch; a cycle ender makes a report, and so does every
        untimed sentence after it that changes the position or fix mode, until the
        next timed sentence that is no ender."""
        kind = s.kind
        continues = kind in _CONTINUES_CYCLE
        tod, force = self._registered_time(s)
        if tod is not None:
            seconds = _seconds(tod)
            if self._registered is None or abs(seconds - self._registered) > 0.01:
                self._new_cycle(tod, out, tag_ender=not continues)
            self._registered = seconds
        elif continues and to_time_of_day(fld(s.fields, 4)) is None:
            # A GLL without a time becomes the ender in place of the last one.
            self._enders.discard(self._last_tag or "")
            self._enders.add(kind)
            self._reliable = True
        epoch = self._epoch
        if epoch.pending_invalid and epoch.tod is not None:
            stamp = time_of(kind, s.fields)
            if stamp is not None and abs(_seconds(stamp) - _seconds(epoch.tod)) <= 0.01:
                epoch.declared_invalid = True
        effect = self._apply(s)
        changes = False
        if effect.position is not None:
            epoch.lat, epoch.lon = effect.position
            changes = True
        if effect.mode is not None:
            epoch.fix_mode = effect.mode
            changes = True
        if force:
            self._reliable = False
        ender = (tod is not None or continues) and kind in self._enders
        if tod is not None and not ender:
            self._after_ender = False
        if (
            force
            or ender
            or (changes and (self._after_ender or (not self._reliable and not self._ubx_seen)))
        ):
            self._report()
        if ender:
            self._after_ender = True
        if tod is not None:
            self._last_tag = kind
        key = self._closing_key(s)
        if key is not None:
            self._last_key = key
            if key == self._closer and not epoch.emitted and epoch.reported_fix is not None:
                self._emit(epoch, out)

    def _registered_time(self, s: Sentence) -> tuple[tuple[int, int, int, int] | None, bool]:
        """The time of day this sentence registers for its cycle, and whether it forces
        a report. GGA, GLL, GNS, GBS and ZDA register their time whether or not a date
        is known (gpsd's driver_nmea0183.c registers it before it checks for a year);
        RMC only with status `A`/`D` and a date (a receiver without fix often sends a
        stale RMC time). A time-less no-fix GGA/RMC, as some Quectel modules send, makes
        gpsd report at once."""
        f = s.fields
        kind = s.kind
        if kind == "GGA":
            text = fld(f, 0)
            if not text and fld(f, 5) == "0":
                return None, True
            return to_time_of_day(text), False
        if kind == "GLL":
            return to_time_of_day(fld(f, 4)), False
        if kind in ("GNS", "GBS", "ZDA"):  # GBS (error estimates) carries its fix's time
            return to_time_of_day(fld(f, 0)), False
        if kind == "RMC":
            if fld(f, 1) in ("A", "D"):
                if fld(f, 0) and len(fld(f, 8)) == 6:
                    return to_time_of_day(fld(f, 0)), False
                return None, False
            return None, not fld(f, 0) or not fld(f, 8)
        return None, False

    def _new_cycle(
        self, tod: tuple[int, int, int, int], out: list[GnssFix], tag_ender: bool
    ) -> None:
        if tag_ender and self._last_tag is not None and self._last_tag not in self._enders:
            self._enders.add(self._last_tag)
            self._reliable = True
        if self._last_key is not None and self._epoch.has_position_sentence:
            if self._last_key == self._previous_closer:
                self._closer = self._last_key
            self._previous_closer = self._last_key
        self._last_key = None
        self._close_epoch(out)
        self._epoch.tod = tod
        if self._invalid_ahead is not None:
            self._epoch.declared_invalid = abs(self._invalid_ahead - _seconds(tod)) <= 0.01
            self._invalid_ahead = None

    def _report(self) -> None:
        if self._ais.pending and not self._ais.report():
            return
        epoch = self._epoch
        valid = epoch.fix_mode is not None and epoch.fix_mode >= 2
        epoch.reported = True
        if valid and epoch.lat is not None and epoch.lon is not None:
            epoch.reported_fix = (epoch.lat, epoch.lon)

    @staticmethod
    def _closing_key(s: Sentence) -> tuple[str, str] | None:
        """What identifies a sentence as a candidate end of an epoch (GSV: its last part)."""
        if s.kind == "GSV":
            total, number = to_int(fld(s.fields, 0)), to_int(fld(s.fields, 1))
            if total is None or number != total:
                return None
        return (s.talker, s.kind)

    def _apply(self, s: Sentence) -> _Effect:
        f = s.fields
        kind = s.kind
        epoch = self._epoch
        system = TALKER_SYSTEMS.get(s.talker)
        if system is not None and kind in _POSITION_KINDS:
            epoch.systems.add(system)
        if kind == "GGA":
            return self._gga(f, epoch)
        if kind == "RMC":
            return self._rmc(f, epoch)
        if kind == "GNS":
            return self._gns(f, epoch)
        if kind == "GLL":
            if len(f) < 6:
                self.stats.malformed += 1
                return _NOTHING
            epoch.has_position_sentence = True
            ok = fld(f, 5) == "A" and fld(f, 6) != "N"
            if not ok:
                self._declare_invalid(fld(f, 4))
            position = _position(fld(f, 0), fld(f, 1), fld(f, 2), fld(f, 3))
            if ok and position is not None:
                return _Effect(position=position, mode=2)
            return _Effect(mode=1)
        if kind == "GSA":
            return self._gsa(s, epoch)
        if kind == "VTG":
            self._vtg(f, epoch)
        elif kind == "ZDA":
            day, month, year = to_int(fld(f, 1)), to_int(fld(f, 2)), to_int(fld(f, 3))
            if day and month and year and year >= 1980:
                try:
                    epoch.day = date(year, month, day)
                except ValueError:
                    self.stats.malformed += 1
        return _NOTHING

    def _gga(self, f: tuple[str, ...], epoch: _Epoch) -> _Effect:
        if len(f) < 9:
            self.stats.malformed += 1
            return _NOTHING
        epoch.has_position_sentence = True
        quality = to_int(fld(f, 5))
        # Quality 0 ("fix not available or invalid") or none: the receiver calls the
        # position invalid. gpsd reports it as a fix at this report point (2D, 3D with
        # an altitude and 4+ satellites, none under 3), but the epoch is declared
        # invalid and gives no fix (docs/gnss.md, receiver-declared invalid).
        if quality is None or quality <= 0:
            self._declare_invalid(fld(f, 0))
        position = _position(fld(f, 1), fld(f, 2), fld(f, 3), fld(f, 4))
        if position is None:
            return _Effect(mode=1)
        sats_text = fld(f, 6)
        sats = to_int(sats_text)
        alt = to_float(fld(f, 8))
        if epoch.alt_m is None:
            epoch.alt_m = alt
        epoch.sats_used = sats
        epoch.hdop = to_float(fld(f, 7)) or epoch.hdop
        if sats_text and sats is not None and sats < 3:
            return _Effect(position=position, mode=1)  # as gpsd: fewer than 3 satellites
        return _Effect(position=position, mode=3 if alt is not None else 2)

    def _rmc(self, f: tuple[str, ...], epoch: _Epoch) -> _Effect:
        if len(f) < 9:
            self.stats.malformed += 1
            return _NOTHING
        epoch.has_position_sentence = True
        self._date_ddmmyy(fld(f, 8))
        if fld(f, 1) not in ("A", "D"):
            self._declare_invalid(fld(f, 0))
            return _Effect(mode=1)
        # FAA mode N ("data not valid") with status A: gpsd reports the fix; the
        # receiver calls it invalid, so the epoch gives none.
        if fld(f, 11) == "N":
            self._declare_invalid(fld(f, 0))
        position = _position(fld(f, 2), fld(f, 3), fld(f, 4), fld(f, 5))
        if position is None:
            return _Effect(mode=1)
        knots = to_float(fld(f, 6))
        if knots is not None and epoch.speed_mps is None:
            epoch.speed_mps = knots * KNOT_MPS
        course = to_float(fld(f, 7))
        if course is not None and epoch.course_deg is None:
            epoch.course_deg = course
        return _Effect(position=position, mode=2)

    def _declare_invalid(self, time_text: str) -> None:
        """The receiver called the fix of `time_text` invalid. It belongs to the epoch
        of that time: the current one, or the next one for a sentence whose time does
        not start a cycle (an RMC V before its GGA). Without a time (a receiver that
        lost lock sends empty GGA/RMC), it is the current epoch's only if a sentence
        stamped with the epoch's time follows; else it may be the next epoch's."""
        tod = to_time_of_day(time_text)
        epoch = self._epoch
        if tod is None:
            epoch.pending_invalid = True
        elif epoch.tod is None or abs(_seconds(tod) - _seconds(epoch.tod)) <= 0.01:
            epoch.declared_invalid = True
        else:
            self._invalid_ahead = _seconds(tod)

    def _gns(self, f: tuple[str, ...], epoch: _Epoch) -> _Effect:
        if len(f) < 9:
            self.stats.malformed += 1
            return _NOTHING
        epoch.has_position_sentence = True
        modes = fld(f, 5)
        # One mode letter per constellation: a fix by any of them counts (gpsd looks
        # at the first letter only, which would drop BeiDou-only fixes).
        if not modes or all(c == "N" for c in modes):
            self._declare_invalid(fld(f, 0))
            return _Effect(mode=1)
        if fld(f, 12) in ("U", "V"):
            # Navigational status unsafe / "not valid" (NMEA 4.11: V = the receiver
            # gives no status, which real receivers send with good fixes): gpsd
            # ignores the sentence, and it says nothing on the fix's validity.
            return _NOTHING
        position = _position(fld(f, 1), fld(f, 2), fld(f, 3), fld(f, 4))
        if position is None:
            return _Effect(mode=1)
        if epoch.alt_m is None:
            epoch.alt_m = to_float(fld(f, 8))
        if epoch.sats_used is None:
            epoch.sats_used = to_int(fld(f, 6))
        if epoch.hdop is None:
            epoch.hdop = to_float(fld(f, 7))
        return _Effect(position=position, mode=2)

    def _vtg(self, f: tuple[str, ...], epoch: _Epoch) -> None:
        course = to_float(fld(f, 0))
        knots = to_float(fld(f, 4))
        kmh = to_float(fld(f, 6))
        if fld(f, 8) == "N":
            self._epoch.pending_invalid = True
            return
        if epoch.course_deg is None and course is not None:
            epoch.course_deg = course
        if epoch.speed_mps is None:
            if kmh is not None:
                epoch.speed_mps = kmh / 3.6
            elif knots is not None:
                epoch.speed_mps = knots * KNOT_MPS

    def _gsa(self, s: Sentence, epoch: _Epoch) -> _Effect:
        f = s.fields
        mode = to_int(fld(f, 1))
        if mode in (1, 2, 3):
            epoch.gsa_mode = max(mode, epoch.gsa_mode or 0)
        if mode == 1:
            epoch.pending_invalid = True
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
        # GSA states the fix mode of the cycle; gpsd takes it as the current mode.
        return _Effect(mode=mode) if mode in (1, 2, 3) else _NOTHING

    def _date_ddmmyy(self, text: str) -> None:
        if len(text) != 6 or not text.isdigit():
            return
        day, month, yy = int(text[0:2]), int(text[2:4]), int(text[4:6])
        year = 2000 + yy if yy < 80 else 1900 + yy
        try:
            self._epoch.day = date(year, month, day)
        except ValueError:
            self.stats.malformed += 1

    def _close_epoch(self, out: list[GnssFix]) -> None:
        epoch = self._epoch
        self._epoch = _Epoch()
        # Sentences before the first time of day: emitted only if they gave a fix.
        timed = epoch.tod is not None or epoch.reported_fix is not None
        if not epoch.emitted and epoch.reported and timed:
            self._emit(epoch, out)
        elif epoch.day is not None:
            self._day = epoch.day
            self._last_tod = None

    def _emit(self, epoch: _Epoch, out: list[GnssFix]) -> None:
        epoch.emitted = True
        if epoch.day is not None:
            self._day = epoch.day
            self._last_tod = None
        stamp = self._stamp(epoch.tod)
        by_system = {name: len(prns) for name, prns in epoch.sats_by_system.items()}
        systems = set(epoch.systems) | {n for n, c in by_system.items() if c}
        systems.discard("SBAS")
        ordered = tuple(n for n in SYSTEM_ORDER if n in systems)
        if epoch.reported_fix is None or epoch.declared_invalid:
            fix = GnssFix(stamp, None, None, None, None, None, 1, None, {}, None, ordered)
        else:
            if epoch.gsa_mode in (2, 3):
                mode = epoch.gsa_mode
            else:
                mode = 3 if epoch.alt_m is not None else 2
            sats = epoch.sats_used
            if sats is None and by_system:
                sats = sum(by_system.values())
            lat, lon = epoch.reported_fix
            fix = GnssFix(
                time=stamp,
                lat=lat,
                lon=lon,
                alt_m=epoch.alt_m if mode == 3 else None,
                speed_mps=epoch.speed_mps,
                course_deg=epoch.course_deg,
                mode=mode,
                sats_used=sats,
                sats_by_system=by_system,
                hdop=epoch.hdop,
                systems=ordered,
                receiver_valid=True,
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

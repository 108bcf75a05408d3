"""NMEA 0183 sentence framing, checksums and field conversions (pure, no I/O).

Facts used here come from the NMEA 0183 4.10/4.11 standard as summarised in public
references (gpsd's "NMEA 0183 revealed", u-blox and Quectel protocol manuals):

- a sentence is `$` or `!`, a 2-letter talker + 3-letter type (or `P` + vendor for
  proprietary ones), comma-separated fields, `*HH` (XOR of the bytes between the start
  character and `*`), CR LF;
- latitude `ddmm.mmmm`, longitude `dddmm.mmmm`, time `hhmmss.ss`, date `ddmmyy`;
- the NMEA 4.10 GSA carries a system id after VDOP: 1 GPS, 2 GLONASS, 3 Galileo,
  4 BeiDou, 5 QZSS, 6 NavIC (IRNSS).
"""

from __future__ import annotations

from dataclasses import dataclass

from devices.errors import ChecksumError, FrameError

#: Talker id → constellation name. `GN` (combined) has none of its own.
TALKER_SYSTEMS: dict[str, str] = {
    "GP": "GPS",
    "BD": "BDS",
    "GB": "BDS",
    "GL": "GLONASS",
    "GA": "Galileo",
    "GQ": "QZSS",
    "QZ": "QZSS",
    "GI": "NavIC",
    "PQ": "QZSS",
}

#: NMEA 4.10 GSA/GSV system id → constellation name.
SYSTEM_IDS: dict[int, str] = {1: "GPS", 2: "GLONASS", 3: "Galileo", 4: "BDS", 5: "QZSS", 6: "NavIC"}

#: The order constellations are listed in `GnssFix.systems`.
SYSTEM_ORDER: tuple[str, ...] = ("GPS", "BDS", "GLONASS", "Galileo", "QZSS", "NavIC", "SBAS")


@dataclass(frozen=True, slots=True)
class Sentence:
    """One checked sentence: `talker` ("GP", "BD", … or "P" for proprietary), `kind`
    ("GGA", …), and its `fields` (everything after the address field)."""

    talker: str
    kind: str
    fields: tuple[str, ...]


def checksum(body: str) -> int:
    """XOR of the characters between the start character and `*`."""
    value = 0
    for char in body.encode("ascii", "replace"):
        value ^= char
    return value


def encode_sentence(body: str) -> str:
    """`body` (e.g. `GPGGA,...`, without `$`/`*`) as a full sentence with checksum and CRLF."""
    start = "!" if body.startswith("!") else "$"
    body = body.lstrip("$!")
    return f"{start}{body}*{checksum(body):02X}\r\n"


def parse_sentence(line: bytes) -> Sentence:
    """Check one framed line (`$...*HH`, without CR/LF) and split it.

    Raises `ChecksumError` for a wrong or missing checksum, `FrameError` for anything
    else that is not a sentence.
    """
    text = line.decode("ascii", "replace").rstrip()
    if len(text) < 7 or text[0] not in "$!":
        raise FrameError("not an NMEA sentence", line)
    star = text.rfind("*")
    if star < 0:
        raise ChecksumError("sentence has no checksum", line)
    given = text[star + 1 :]
    body = text[1:star]
    if len(given) != 2 or any(c not in "0123456789ABCDEFabcdef" for c in given):
        raise ChecksumError(f"malformed checksum field {given!r}", line)
    expected = checksum(body)
    if int(given, 16) != expected:
        raise ChecksumError(f"checksum {given} != computed {expected:02X}", line)
    parts = body.split(",")
    address = parts[0]
    if not address.isalnum() or len(address) < 3:
        raise FrameError(f"bad address field {address!r}", line)
    if address[0] == "P":
        return Sentence(talker="P", kind=address[1:], fields=tuple(parts[1:]))
    if len(address) != 5:
        raise FrameError(f"bad address field {address!r}", line)
    return Sentence(talker=address[:2], kind=address[2:], fields=tuple(parts[1:]))


def field(fields: tuple[str, ...], index: int) -> str:
    """The field at `index`, or "" when the sentence is shorter."""
    return fields[index].strip() if index < len(fields) else ""


def to_float(text: str) -> float | None:
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    if value != value or value in (float("inf"), float("-inf")):
        return None
    return value


def to_int(text: str) -> int | None:
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        value = to_float(text)
        return int(value) if value is not None else None


def to_degrees(value: str, hemisphere: str, max_degrees: int) -> float | None:
    """`ddmm.mmmm` + `N`/`S` (or `dddmm.mmmm` + `E`/`W`) as signed decimal degrees."""
    if not value or hemisphere not in ("N", "S", "E", "W"):
        return None
    dot = value.find(".")
    if dot < 0:
        dot = len(value)
    if dot < 3 or not value[: dot - 2].isdigit():
        return None
    try:
        degrees = int(value[: dot - 2])
        minutes = float(value[dot - 2 :])
    except ValueError:
        return None
    if minutes >= 60.0 or minutes < 0:
        return None
    result = degrees + minutes / 60.0
    if result > max_degrees:
        return None
    return -result if hemisphere in ("S", "W") else result


def to_time_of_day(text: str) -> tuple[int, int, int, int] | None:
    """`hhmmss[.sss]` as (hour, minute, second, microsecond), or None."""
    if len(text) < 6 or not text[:6].isdigit():
        return None
    hour, minute, second = int(text[0:2]), int(text[2:4]), int(text[4:6])
    micro = 0
    if len(text) > 6:
        if text[6] != "." or (len(text) > 7 and not text[7:].isdigit()):
            return None
        digits = (text[7:] + "000000")[:6]
        micro = int(digits)
    if hour > 23 or minute > 59 or second > 60:
        return None
    return hour, minute, second, micro


#: Which field of a sentence carries its time of day (`hhmmss.ss`), by sentence type.
TIME_FIELDS: dict[str, int] = {"GGA": 0, "RMC": 0, "GNS": 0, "GBS": 0, "ZDA": 0, "GLL": 4}


def time_of(kind: str, fields: tuple[str, ...]) -> tuple[int, int, int, int] | None:
    """The time of day a sentence carries (whatever its status says), or None."""
    index = TIME_FIELDS.get(kind)
    return None if index is None else to_time_of_day(field(fields, index))


def system_of_prn(prn: int, talker: str) -> str | None:
    """Constellation of a satellite number, by talker first, then by the usual ranges
    (NMEA 4.x and receiver manuals: GPS 1-32, SBAS 33-64/120-158, GLONASS 65-96,
    QZSS 193-202, BeiDou 201-264 or 401-437, Galileo 301-336)."""
    by_talker = TALKER_SYSTEMS.get(talker)
    if by_talker is not None:
        return by_talker
    if 1 <= prn <= 32:
        return "GPS"
    if 33 <= prn <= 64 or 120 <= prn <= 158:
        return "SBAS"
    if 65 <= prn <= 96:
        return "GLONASS"
    if 193 <= prn <= 200:
        return "QZSS"
    if 201 <= prn <= 264 or 401 <= prn <= 437:
        return "BDS"
    if 301 <= prn <= 336:
        return "Galileo"
    return None

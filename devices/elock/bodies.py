"""Message bodies of JT/T 808 (2013 and 2019 forms) that BondWatch reads or writes.

Field layouts follow JT/T 808-2019 §8 (and the 2013 and 2011 editions where they
differ). Every class has `MSG_ID`, an `encode(version)` giving the body bytes
(`version` is None for the 2013 form) and a `decode_*` function below.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import ClassVar, Final

from devices.elock.block import BondWatchBlock, decode_block, is_block
from devices.elock.profile import TRANSPARENT_TYPE
from devices.elock.tlv import Extra, decode_extras, encode_extras
from devices.errors import FrameError

CHINA_TIME = timezone(timedelta(hours=8), "GMT+8")

MSG_TERMINAL_RESPONSE = 0x0001
MSG_HEARTBEAT = 0x0002
MSG_REGISTRATION = 0x0100
MSG_REGISTRATION_RESPONSE = 0x8100
MSG_AUTHENTICATION = 0x0102
MSG_LOCATION = 0x0200
MSG_BATCH_LOCATION = 0x0704
MSG_TRANSPARENT_UP = 0x0900
MSG_TRANSPARENT_DOWN = 0x8900
MSG_PLATFORM_RESPONSE = 0x8001

#: Status bit 1: the position is a fix (else the numbers are the last known or zeros).
STATUS_POSITIONED: Final = 1 << 1
STATUS_SOUTH = 1 << 2
STATUS_WEST = 1 << 3

#: Alarm flag bits, JT/T 808-2019 table 24 (bits 15–17 are 2019 additions).
ALARM_BITS: dict[int, str] = {
    0: "emergency",
    1: "overspeed",
    2: "fatigue_driving",
    3: "danger_warning",
    4: "gnss_module_fault",
    5: "gnss_antenna_disconnected",
    6: "gnss_antenna_short",
    7: "main_power_undervoltage",
    8: "main_power_off",
    9: "display_fault",
    10: "tts_fault",
    11: "camera_fault",
    12: "ic_card_fault",
    13: "overspeed_warning",
    14: "fatigue_warning",
    15: "driving_violation",
    16: "tyre_pressure_warning",
    17: "right_turn_blind_spot",
    18: "day_driving_overtime",
    19: "stop_overtime",
    20: "area_in_out",
    21: "route_in_out",
    22: "route_time_abnormal",
    23: "route_deviation",
    24: "vss_fault",
    25: "fuel_abnormal",
    26: "vehicle_stolen",
    27: "illegal_ignition",
    28: "illegal_displacement",
    29: "collision_warning",
    30: "rollover_warning",
    31: "illegal_door_open",
}

#: Status bits, JT/T 808-2019 table 25 (bit 8–9 load state is a two-bit field, left out).
STATUS_BITS: dict[int, str] = {
    0: "acc_on",
    1: "positioned",
    2: "south",
    3: "west",
    4: "out_of_service",
    5: "position_encrypted",
    6: "forward_collision_warning",
    7: "lane_departure_warning",
    10: "oil_circuit_cut",
    11: "electric_circuit_cut",
    12: "doors_locked",
    13: "door1_open",
    14: "door2_open",
    15: "door3_open",
    16: "door4_open",
    17: "door5_open",
    18: "gps_used",
    19: "beidou_used",
    20: "glonass_used",
    21: "galileo_used",
    22: "moving",
}


def flag_names(value: int, names: dict[int, str]) -> list[str]:
    return [name for bit, name in names.items() if value >> bit & 1]


def _text(data: bytes) -> str:
    return data.rstrip(b"\x00 ").decode("gbk", errors="replace")


def _fixed(text: str, size: int) -> bytes:
    data = text.encode("gbk")
    if len(data) > size:
        raise ValueError(f"{text!r} is longer than {size} bytes")
    return data.ljust(size, b"\x00")


def _need(body: bytes, size: int, what: str) -> None:
    if len(body) < size:
        raise FrameError(f"{what} body too short: {len(body)} bytes, at least {size} needed", body)


# --- general responses, heartbeat ----------------------------------------------------------


@dataclass(frozen=True)
class TerminalResponse:
    """0x0001: the terminal's answer to a platform message (result 0 ok, 1 failed,
    2 bad message, 3 unsupported)."""

    MSG_ID: ClassVar[int] = MSG_TERMINAL_RESPONSE
    reply_serial: int
    reply_id: int
    result: int

    def encode(self, version: int | None = None) -> bytes:
        return struct.pack(">HHB", self.reply_serial, self.reply_id, self.result)


@dataclass(frozen=True)
class PlatformResponse:
    """0x8001: the platform's answer (0 ok, 1 failed, 2 bad message, 3 unsupported,
    4 alarm acknowledged)."""

    MSG_ID: ClassVar[int] = MSG_PLATFORM_RESPONSE
    reply_serial: int
    reply_id: int
    result: int

    def encode(self, version: int | None = None) -> bytes:
        return struct.pack(">HHB", self.reply_serial, self.reply_id, self.result)


def _decode_response(body: bytes, what: str) -> tuple[int, int, int]:
    if len(body) != 5:
        raise FrameError(f"{what} body must be 5 bytes, got {len(body)}", body)
    reply_serial, reply_id, result = struct.unpack(">HHB", body)
    return reply_serial, reply_id, result


@dataclass(frozen=True)
class Heartbeat:
    """0x0002: an empty body."""

    MSG_ID: ClassVar[int] = MSG_HEARTBEAT

    def encode(self, version: int | None = None) -> bytes:
        return b""


# --- registration and authentication -------------------------------------------------------


@dataclass(frozen=True)
class Registration:
    """0x0100. `form` is "2019", "2013" or "2011" (the 2011 model field is 8 bytes)."""

    MSG_ID: ClassVar[int] = MSG_REGISTRATION
    province: int
    city: int
    manufacturer: str
    model: str
    terminal_id: str
    plate_colour: int
    plate: str
    form: str = "2013"

    def encode(self, version: int | None = None) -> bytes:
        sizes = _REGISTRATION_SIZES["2019" if version is not None else self.form]
        return (
            struct.pack(">HH", self.province, self.city)
            + _fixed(self.manufacturer, sizes[0])
            + _fixed(self.model, sizes[1])
            + _fixed(self.terminal_id, sizes[2])
            + bytes([self.plate_colour])
            + self.plate.encode("gbk")
        )


#: (manufacturer, model, terminal id) field sizes per edition.
_REGISTRATION_SIZES = {"2019": (11, 30, 30), "2013": (5, 20, 7), "2011": (5, 8, 7)}


def decode_registration(body: bytes, version: int | None) -> Registration:
    if version is not None:
        form = "2019"
    elif len(body) >= 37:
        form = "2013"
    else:
        form = "2011"
    maker, model, term = _REGISTRATION_SIZES[form]
    fixed = 4 + maker + model + term + 1
    _need(body, fixed, f"registration (JT/T 808-{form} form)")
    province, city = struct.unpack_from(">HH", body, 0)
    offset = 4
    fields = []
    for size in (maker, model, term):
        fields.append(_text(body[offset : offset + size]))
        offset += size
    return Registration(
        province=province,
        city=city,
        manufacturer=fields[0],
        model=fields[1],
        terminal_id=fields[2],
        plate_colour=body[offset],
        plate=_text(body[offset + 1 :]),
        form=form,
    )


@dataclass(frozen=True)
class RegistrationResponse:
    """0x8100: result 0 ok (with the authentication code), 1–4 refusals."""

    MSG_ID: ClassVar[int] = MSG_REGISTRATION_RESPONSE
    reply_serial: int
    result: int
    auth_code: str = ""

    def encode(self, version: int | None = None) -> bytes:
        out = struct.pack(">HB", self.reply_serial, self.result)
        return out + (self.auth_code.encode("gbk") if self.result == 0 else b"")


def decode_registration_response(body: bytes) -> RegistrationResponse:
    _need(body, 3, "registration response")
    reply_serial, result = struct.unpack_from(">HB", body, 0)
    return RegistrationResponse(reply_serial, result, _text(body[3:]))


@dataclass(frozen=True)
class Authentication:
    """0x0102. The 2019 form adds a length byte, the IMEI and the software version."""

    MSG_ID: ClassVar[int] = MSG_AUTHENTICATION
    auth_code: str
    imei: str = ""
    software_version: str = ""

    def encode(self, version: int | None = None) -> bytes:
        code = self.auth_code.encode("gbk")
        if version is None:
            return code
        if len(code) > 0xFF:
            raise ValueError("authentication code longer than 255 bytes")
        return bytes([len(code)]) + code + _fixed(self.imei, 15) + _fixed(self.software_version, 20)


def decode_authentication(body: bytes, version: int | None) -> Authentication:
    if version is None:
        return Authentication(_text(body))
    _need(body, 1, "authentication (2019 form)")
    size = body[0]
    # Some devices leave out (or shorten) the IMEI and version: take what is there.
    _need(body, 1 + size, "authentication (2019 form)")
    code = body[1 : 1 + size]
    rest = body[1 + size :]
    return Authentication(_text(code), _text(rest[:15]), _text(rest[15:35]))


# --- location -----------------------------------------------------------------------------


def decode_bcd_time(data: bytes) -> datetime | None:
    """YYMMDDhhmmss BCD in GMT+8 → aware UTC; None when all zero or not a valid date."""
    if not any(data):
        return None
    digits = data.hex()
    if not digits.isdigit():
        return None
    try:
        local = datetime(
            2000 + int(digits[0:2]),
            int(digits[2:4]),
            int(digits[4:6]),
            int(digits[6:8]),
            int(digits[8:10]),
            int(digits[10:12]),
            tzinfo=CHINA_TIME,
        )
    except ValueError:
        return None
    return local.astimezone(UTC)


def encode_bcd_time(moment: datetime | None) -> bytes:
    if moment is None:
        return bytes(6)
    if moment.tzinfo is None:
        raise ValueError("location time must be timezone-aware")
    local = moment.astimezone(CHINA_TIME)
    if not 2000 <= local.year <= 2099:
        raise ValueError(f"year {local.year} does not fit a JT/T 808 BCD time")
    return bytes.fromhex(local.strftime("%y%m%d%H%M%S"))


@dataclass(frozen=True)
class Location:
    """0x0200 body (also each item of 0x0704). `lat`/`lon` signed: south and west negative."""

    MSG_ID: ClassVar[int] = MSG_LOCATION
    alarm: int
    status: int
    lat: float
    lon: float
    alt_m: int
    speed_kmh: float
    course_deg: int
    time: datetime | None
    extras: tuple[Extra, ...] = ()
    trailing: bytes = b""
    time_bcd: bytes = field(default=b"", compare=False)

    @property
    def place(self) -> tuple[float, float] | None:
        """(lat, lon) when the report says it is positioned at a place that exists (a
        device's numbers beyond ±90° / ±180° are not one); else None."""
        if not self.status & STATUS_POSITIONED:
            return None
        if not (-90 <= self.lat <= 90 and -180 <= self.lon <= 180):
            return None
        return self.lat, self.lon

    def encode(self, version: int | None = None) -> bytes:
        status = self.status & ~(STATUS_SOUTH | STATUS_WEST)
        if self.lat < 0:
            status |= STATUS_SOUTH
        if self.lon < 0:
            status |= STATUS_WEST
        return (
            struct.pack(
                ">IIIIhHH",
                self.alarm,
                status,
                round(abs(self.lat) * 1e6),
                round(abs(self.lon) * 1e6),
                self.alt_m,
                round(self.speed_kmh * 10),
                self.course_deg,
            )
            + encode_bcd_time(self.time)
            + encode_extras(list(self.extras))
            + self.trailing
        )

    def extra(self, name: str) -> Extra | None:
        """The first additional item decoded under `name`."""
        return next((item for item in self.extras if item.name == name), None)

    @property
    def bondwatch(self) -> BondWatchBlock | None:
        """The BondWatch lock block, when the report carries one."""
        item = next((x for x in self.extras if x.name == "bondwatch"), None)
        return None if item is None else decode_block(item.raw)


LOCATION_BASE = 28


def decode_location(body: bytes) -> Location:
    _need(body, LOCATION_BASE, "location report")
    alarm, status, lat_raw, lon_raw, alt, speed, course = struct.unpack_from(">IIIIhHH", body, 0)
    lat = lat_raw / 1e6
    lon = lon_raw / 1e6
    if status & STATUS_SOUTH:
        lat = -lat
    if status & STATUS_WEST:
        lon = -lon
    time_bcd = body[22:28]
    extras, trailing = decode_extras(body[LOCATION_BASE:])
    return Location(
        alarm=alarm,
        status=status,
        lat=lat,
        lon=lon,
        alt_m=alt,
        speed_kmh=speed / 10,
        course_deg=course,
        time=decode_bcd_time(time_bcd),
        extras=tuple(extras),
        trailing=trailing,
        time_bcd=time_bcd,
    )


@dataclass(frozen=True)
class BatchLocation:
    """0x0704: kind 0 = normal batch, 1 = blind-area (buffered) supplement."""

    MSG_ID: ClassVar[int] = MSG_BATCH_LOCATION
    kind: int
    items: tuple[Location, ...]

    def encode(self, version: int | None = None) -> bytes:
        out = bytearray(struct.pack(">HB", len(self.items), self.kind))
        for item in self.items:
            data = item.encode(version)
            out += struct.pack(">H", len(data)) + data
        return bytes(out)


def decode_batch(body: bytes) -> BatchLocation:
    _need(body, 3, "batch location upload")
    count, kind = struct.unpack_from(">HB", body, 0)
    offset = 3
    items = []
    for index in range(count):
        if offset + 2 > len(body):
            raise FrameError(
                f"batch location upload says {count} reports, body ends after {index}", body
            )
        (size,) = struct.unpack_from(">H", body, offset)
        offset += 2
        if offset + size > len(body):
            raise FrameError(
                f"batch location upload: report {index + 1} says {size} bytes,"
                f" {len(body) - offset} left",
                body,
            )
        items.append(decode_location(body[offset : offset + size]))
        offset += size
    if offset != len(body):
        raise FrameError(
            f"batch location upload: {len(body) - offset} bytes after the {count} reports", body
        )
    return BatchLocation(kind, tuple(items))


# --- transparent data and unknown ---------------------------------------------------------


@dataclass(frozen=True)
class Transparent:
    """0x0900 (terminal→platform) or 0x8900 (platform→terminal): type BYTE + data."""

    kind: int
    data: bytes
    downlink: bool = False

    @property
    def MSG_ID(self) -> int:
        return MSG_TRANSPARENT_DOWN if self.downlink else MSG_TRANSPARENT_UP

    def encode(self, version: int | None = None) -> bytes:
        return bytes([self.kind]) + self.data

    @property
    def bondwatch(self) -> BondWatchBlock | None:
        if self.kind == TRANSPARENT_TYPE and is_block(self.data):
            return decode_block(self.data)
        return None


def decode_transparent(body: bytes, downlink: bool) -> Transparent:
    _need(body, 1, "transparent data")
    return Transparent(body[0], body[1:], downlink)


@dataclass(frozen=True)
class RawBody:
    """A body this codec does not decode (unknown id, encrypted or a sub-package)."""

    msg_id: int
    data: bytes
    why: str = "unknown message id"

    @property
    def MSG_ID(self) -> int:
        return self.msg_id

    def encode(self, version: int | None = None) -> bytes:
        return self.data


Body = (
    TerminalResponse
    | PlatformResponse
    | Heartbeat
    | Registration
    | RegistrationResponse
    | Authentication
    | Location
    | BatchLocation
    | Transparent
    | RawBody
)


def decode_body(msg_id: int, body: bytes, version: int | None) -> Body:
    """Decode a complete, unencrypted body; unknown ids give a RawBody."""
    if msg_id == MSG_TERMINAL_RESPONSE:
        return TerminalResponse(*_decode_response(body, "terminal general response"))
    if msg_id == MSG_PLATFORM_RESPONSE:
        return PlatformResponse(*_decode_response(body, "platform general response"))
    if msg_id == MSG_HEARTBEAT:
        if body:
            return RawBody(msg_id, body, "heartbeat with a non-empty body")
        return Heartbeat()
    if msg_id == MSG_REGISTRATION:
        return decode_registration(body, version)
    if msg_id == MSG_REGISTRATION_RESPONSE:
        return decode_registration_response(body)
    if msg_id == MSG_AUTHENTICATION:
        return decode_authentication(body, version)
    if msg_id == MSG_LOCATION:
        return decode_location(body)
    if msg_id == MSG_BATCH_LOCATION:
        return decode_batch(body)
    if msg_id in (MSG_TRANSPARENT_UP, MSG_TRANSPARENT_DOWN):
        return decode_transparent(body, msg_id == MSG_TRANSPARENT_DOWN)
    return RawBody(msg_id, body)

"""The BondWatch block: ``b"BW"``, version BYTE, then sub-items (id BYTE, length BYTE, value).

It travels as additional item `profile.TLV_BONDWATCH` of a location report and as the
payload of transparent data (0x0900 up, 0x8900 down) of type `profile.TRANSPARENT_TYPE`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

from devices.elock import profile
from devices.errors import FrameError


@dataclass(frozen=True)
class CommandResult:
    """A lock's answer to the command sent with serial number `reply_serial`."""

    reply_serial: int
    command: int
    result: int
    reason: int = 0

    @property
    def command_name(self) -> str:
        return profile.COMMAND_BY_CODE.get(self.command, f"0x{self.command:02X}")

    @property
    def result_name(self) -> str:
        return profile.RESULT_BY_CODE.get(self.result, "failed")

    @property
    def reason_name(self) -> str:
        return profile.REASON_BY_CODE.get(self.reason, f"reason_{self.reason}")


@dataclass(frozen=True)
class Area:
    """A circle the lock may be unsealed in: centre in degrees, radius in metres."""

    lat: float
    lon: float
    radius_m: int

    def pack(self) -> bytes:
        """DWORD lat ×10⁶, DWORD lon ×10⁶ (signed), DWORD radius: the wire form, also
        covered by a `set_area` token's tag."""
        return struct.pack(">iiI", round(self.lat * 1e6), round(self.lon * 1e6), self.radius_m)


@dataclass(frozen=True)
class BondWatchBlock:
    lock_id: str | None = None
    state: int | None = None
    event: int | None = None
    battery_pct: int | None = None
    battery_mv: int | None = None
    wrong_passwords: int | None = None
    command_result: CommandResult | None = None
    trip_id: str | None = None
    command: int | None = None
    token: bytes | None = None
    area: Area | None = None
    report_counter: int | None = None
    report_mac: bytes | None = None
    version: int = profile.PROFILE_VERSION
    unknown: tuple[tuple[int, bytes], ...] = field(default=())

    @property
    def state_name(self) -> profile.LockState:
        return profile.STATE_BY_CODE.get(self.state if self.state is not None else 0, "unknown")

    @property
    def event_name(self) -> profile.LockEventName | None:
        return None if self.event is None else profile.EVENT_BY_CODE.get(self.event)

    def encode(self) -> bytes:
        out = bytearray(profile.MAGIC) + bytes([self.version])

        def put(sub: int, value: bytes) -> None:
            if len(value) > 0xFF:
                raise ValueError(f"BondWatch sub-item 0x{sub:02X} is longer than 255 bytes")
            out.extend(bytes([sub, len(value)]) + value)

        if self.lock_id is not None:
            put(profile.SUB_LOCK_ID, self.lock_id.encode("ascii"))
        if self.command is not None:
            put(profile.SUB_COMMAND, bytes([self.command]))
        if self.state is not None:
            put(profile.SUB_STATE, bytes([self.state]))
        if self.event is not None:
            put(profile.SUB_EVENT, bytes([self.event]))
        if self.battery_pct is not None:
            put(profile.SUB_BATTERY, struct.pack(">BH", self.battery_pct, self.battery_mv or 0))
        if self.wrong_passwords is not None:
            put(profile.SUB_WRONG_PASSWORDS, bytes([min(self.wrong_passwords, 0xFF)]))
        if self.command_result is not None:
            r = self.command_result
            put(
                profile.SUB_COMMAND_RESULT,
                struct.pack(">HBBB", r.reply_serial, r.command, r.result, r.reason),
            )
        if self.trip_id is not None:
            put(profile.SUB_TRIP_ID, self.trip_id.encode("utf-8"))
        if self.token is not None:
            put(profile.SUB_TOKEN, self.token)
        if self.area is not None:
            put(profile.SUB_AREA, self.area.pack())
        if self.report_counter is not None:
            put(profile.SUB_REPORT_COUNTER, struct.pack(">I", self.report_counter))
        if self.report_mac is not None:
            put(profile.SUB_REPORT_MAC, self.report_mac)
        for sub, value in self.unknown:
            put(sub, value)
        return bytes(out)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.lock_id is not None:
            out["lock_id"] = self.lock_id
        if self.command is not None:
            out["command"] = profile.COMMAND_BY_CODE.get(self.command, self.command)
        if self.state is not None:
            out["state"] = self.state_name
        if self.event is not None:
            out["event"] = self.event_name or self.event
        if self.battery_pct is not None:
            out["battery_pct"] = self.battery_pct
            out["battery_mv"] = self.battery_mv
        if self.wrong_passwords is not None:
            out["wrong_passwords"] = self.wrong_passwords
        if self.command_result is not None:
            r = self.command_result
            out["command_result"] = {
                "reply_serial": r.reply_serial,
                "command": r.command_name,
                "result": r.result_name,
                "reason": r.reason_name,
            }
        if self.trip_id is not None:
            out["trip_id"] = self.trip_id
        if self.token is not None:
            out["token"] = self.token.hex()
        if self.area is not None:
            out["area"] = {
                "lat": self.area.lat,
                "lon": self.area.lon,
                "radius_m": self.area.radius_m,
            }
        if self.report_counter is not None:
            out["report_counter"] = self.report_counter
        if self.report_mac is not None:
            out["report_mac"] = self.report_mac.hex()
        for sub, value in self.unknown:
            out[f"0x{sub:02X}"] = value.hex()
        return out


def is_block(data: bytes) -> bool:
    return len(data) >= 3 and data[:2] == profile.MAGIC


def decode_block(data: bytes) -> BondWatchBlock:
    """Decode a BondWatch block; anything malformed is a FrameError naming the sub-item."""
    if not is_block(data):
        raise FrameError("not a BondWatch block: missing the 'BW' magic and version", data)
    fields: dict[str, Any] = {"version": data[2]}
    unknown: list[tuple[int, bytes]] = []
    offset = 3
    while offset < len(data):
        if offset + 2 > len(data):
            raise FrameError(f"BondWatch block: truncated sub-item header at {offset}", data)
        sub, length = data[offset], data[offset + 1]
        value = data[offset + 2 : offset + 2 + length]
        if len(value) != length:
            raise FrameError(
                f"BondWatch block: sub-item 0x{sub:02X} says {length} bytes, {len(value)} left",
                data,
            )
        offset += 2 + length
        try:
            _decode_sub(sub, value, fields, unknown)
        except (ValueError, struct.error) as err:
            raise FrameError(f"BondWatch block: bad sub-item 0x{sub:02X}: {err}", data) from err
    return BondWatchBlock(**fields, unknown=tuple(unknown))


def _one_byte(value: bytes) -> int:
    if len(value) != 1:
        raise ValueError(f"expected 1 byte, got {len(value)}")
    return value[0]


def _decode_sub(
    sub: int, value: bytes, fields: dict[str, Any], unknown: list[tuple[int, bytes]]
) -> None:
    if sub == profile.SUB_LOCK_ID:
        fields["lock_id"] = value.decode("ascii")
    elif sub == profile.SUB_STATE:
        fields["state"] = _one_byte(value)
    elif sub == profile.SUB_EVENT:
        fields["event"] = _one_byte(value)
    elif sub == profile.SUB_BATTERY:
        fields["battery_pct"], fields["battery_mv"] = struct.unpack(">BH", value)
    elif sub == profile.SUB_WRONG_PASSWORDS:
        fields["wrong_passwords"] = _one_byte(value)
    elif sub == profile.SUB_COMMAND_RESULT:
        fields["command_result"] = CommandResult(*struct.unpack(">HBBB", value))
    elif sub == profile.SUB_TRIP_ID:
        fields["trip_id"] = value.decode("utf-8")
    elif sub == profile.SUB_COMMAND:
        fields["command"] = _one_byte(value)
    elif sub == profile.SUB_TOKEN:
        fields["token"] = value
    elif sub == profile.SUB_AREA:
        lat, lon, radius = struct.unpack(">iiI", value)
        fields["area"] = Area(lat / 1e6, lon / 1e6, radius)
    elif sub == profile.SUB_REPORT_COUNTER:
        (fields["report_counter"],) = struct.unpack(">I", value)
    elif sub == profile.SUB_REPORT_MAC:
        if len(value) != profile.REPORT_MAC_BYTES:
            raise ValueError(f"expected {profile.REPORT_MAC_BYTES} bytes, got {len(value)}")
        fields["report_mac"] = value
    else:
        unknown.append((sub, value))

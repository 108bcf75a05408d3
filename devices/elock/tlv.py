"""Additional information items (TLVs) of the location report 0x0200.

Each item is ``id BYTE, length BYTE, value``. Standard items follow JT/T 808-2019
tables 27 and 28; the e-lock items follow the public descriptions of Chinese
e-lock extensions (as decoded by Traccar's ``Jt808ProtocolDecoder``, Apache-2.0,
whose test frames this project checks against) and the BondWatch lock profile
(`devices.elock.profile`, `docs/lock-profile.md`). Unknown items keep their raw
bytes; a value whose length does not fit its known layout keeps its raw bytes too.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from devices.elock import block, profile
from devices.errors import FrameError


@dataclass(frozen=True)
class Extra:
    """One additional-information item: `name`/`value` when known, always the raw bytes."""

    id: int
    raw: bytes
    name: str | None = None
    value: Any = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "hex": self.raw.hex()}
        if self.name is not None:
            out["name"] = self.name
            out["value"] = self.value
        return out


Decoder = Callable[[bytes], Any]


def _uint(scale: float | None = None) -> Decoder:
    def decode(raw: bytes) -> Any:
        value = int.from_bytes(raw, "big")
        return value if scale is None else round(value * scale, 6)

    return decode


def _int16_tenths(raw: bytes) -> float:
    # Carriage temperature (2019 table 27, 0x06): bit 15 is the sign, the rest tenths of °C.
    value = int.from_bytes(raw, "big")
    magnitude = (value & 0x7FFF) / 10
    return -magnitude if value & 0x8000 else magnitude


def _overspeed(raw: bytes) -> dict[str, int]:
    out = {"location_type": raw[0]}
    if raw[0] != 0 and len(raw) >= 5:
        out["area_id"] = int.from_bytes(raw[1:5], "big")
    return out


def _area(raw: bytes) -> dict[str, int]:
    return {
        "location_type": raw[0],
        "area_id": int.from_bytes(raw[1:5], "big"),
        "direction": raw[5],
    }


def _route_time(raw: bytes) -> dict[str, int]:
    area_id, seconds, result = struct.unpack(">IHB", raw)
    return {"route_id": area_id, "travel_time_s": seconds, "result": result}


def _analog(raw: bytes) -> dict[str, int]:
    value = int.from_bytes(raw, "big")
    return {"ad0": value & 0xFFFF, "ad1": value >> 16}


def _lock_event_60(raw: bytes) -> dict[str, Any]:
    """0x60: a lock event code, for card/password unlock events (0x61–0x66) lock and card id."""
    out: dict[str, Any] = {"event": int.from_bytes(raw[0:2], "big")}
    rest = raw[2:]
    if 0x61 <= out["event"] <= 0x66 and len(rest) >= 14:
        out["lock_id"] = rest[0:6].hex()
        out["card"] = rest[6:14].decode("latin-1")
    elif rest:
        out["data"] = rest.hex()
    return out


def _lock_list_63(raw: bytes) -> list[dict[str, Any]]:
    """0x63: per lock id BYTE[6], battery WORD mV, seal BYTE (0x31 sealed), state, RSSI."""
    locks = []
    for start in range(0, len(raw) - len(raw) % 11, 11):
        item = raw[start : start + 11]
        locks.append(
            {
                "lock_id": item[0:6].hex(),
                "battery_v": int.from_bytes(item[6:8], "big") / 1000,
                "sealed": item[8] == 0x31,
                "physical_state": item[9],
                "rssi": item[10],
            }
        )
    return locks


def _lock_info_d5(raw: bytes) -> Any:
    """0xD5: count, per lock id BYTE[5], card BYTE[5], battery % BYTE, status WORD (bit 5 open)."""
    if len(raw) == 2:
        return {"power_v": int.from_bytes(raw, "big") / 100}
    count = raw[0]
    locks = []
    for index in range(count):
        item = raw[1 + 13 * index : 14 + 13 * index]
        status = int.from_bytes(item[11:13], "big")
        locks.append(
            {
                "lock_id": item[0:5].hex(),
                "card": item[5:10].hex(),
                "battery_pct": item[10],
                "status": status,
                "locked": not status & 0x20,
            }
        )
    return locks


def _d5_fits(raw: bytes) -> bool:
    return len(raw) == 2 or (len(raw) >= 1 and len(raw) == 1 + 13 * raw[0])


def _bondwatch(raw: bytes) -> dict[str, Any]:
    return block.decode_block(raw).to_json()


#: id → (name, decoder, accepted value lengths or None for any, or a predicate)
_KNOWN: dict[int, tuple[str, Decoder, Callable[[bytes], bool]]] = {}


def _known(tlv_id: int, name: str, decoder: Decoder, fits: Callable[[bytes], bool]) -> None:
    _KNOWN[tlv_id] = (name, decoder, fits)


def _length(*sizes: int) -> Callable[[bytes], bool]:
    return lambda raw: len(raw) in sizes


def _at_least(size: int) -> Callable[[bytes], bool]:
    return lambda raw: len(raw) >= size


# JT/T 808-2019 table 27 / 28.
_known(0x01, "mileage_km", _uint(0.1), _length(4))
_known(0x02, "fuel_l", _uint(0.1), _length(2))
_known(0x03, "record_speed_kmh", _uint(0.1), _length(2))
_known(0x04, "alarm_event_id", _uint(), _length(2))
_known(0x06, "carriage_temp_c", _int16_tenths, _length(2))
_known(0x11, "overspeed_alarm", _overspeed, _length(1, 5))
_known(0x12, "area_alarm", _area, _length(6))
_known(0x13, "route_time_alarm", _route_time, _length(7))
_known(0x25, "vehicle_signal_status", _uint(), _length(4))
_known(0x2A, "io_status", _uint(), _length(2))
_known(0x2B, "analog", _analog, _length(4))
_known(0x30, "rssi", _uint(), _length(1))
_known(0x31, "satellites", _uint(), _length(1))
# Chinese e-lock extensions seen on real devices.
_known(0x60, "lock_event", _lock_event_60, _at_least(2))
_known(0x63, "lock_list", _lock_list_63, lambda raw: len(raw) > 0 and len(raw) % 11 == 0)
_known(0xD5, "lock_info", _lock_info_d5, _d5_fits)
# The BondWatch lock profile (docs/lock-profile.md): one block behind a magic.
_known(profile.TLV_BONDWATCH, "bondwatch", _bondwatch, block.is_block)


def decode_extras(data: bytes) -> tuple[list[Extra], bytes]:
    """Decode the TLV list; return (items, trailing bytes that do not form an item)."""
    items: list[Extra] = []
    offset = 0
    while offset + 2 <= len(data):
        tlv_id, length = data[offset], data[offset + 1]
        end = offset + 2 + length
        if end > len(data):
            break
        value = data[offset + 2 : end]
        items.append(decode_item(tlv_id, value))
        offset = end
    return items, data[offset:]


def decode_item(tlv_id: int, value: bytes) -> Extra:
    known = _KNOWN.get(tlv_id)
    if known is None:
        return Extra(tlv_id, value)
    name, decoder, fits = known
    if not fits(value):
        return Extra(tlv_id, value)
    try:
        decoded = decoder(value)
    except (FrameError, ValueError, IndexError, struct.error):
        return Extra(tlv_id, value)
    return Extra(tlv_id, value, name, decoded)


def encode_extras(items: list[Extra]) -> bytes:
    """The wire form of a TLV list (from each item's raw bytes)."""
    out = bytearray()
    for item in items:
        if len(item.raw) > 0xFF:
            raise ValueError(f"additional item 0x{item.id:02X} is longer than 255 bytes")
        out += bytes([item.id, len(item.raw)]) + item.raw
    return bytes(out)

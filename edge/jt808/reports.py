"""A cellular device's location report → the contract's `position` and `lock` messages.

Pure: no I/O, no clock (the receive time is passed in). One 0x0200 report (or one item
of a 0x0704 batch) becomes one `Item` of the gateway store — its position (when the
device reports positions) and, from a BondWatch lock, its lock report with the lock's
report counter and MAC passed through untouched (the server checks them; the gateway
holds no lock secret, docs/lock-profile.md) — with a digest that recognises the same
report sent again.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from contract import topics
from contract.cellular_registry import CellularDevice, phone_key
from contract.ids import format_ts
from devices.elock.bodies import STATUS_BITS, Location
from devices.elock.driver import vendor_lock_events
from devices.errors import FrameError
from edge.jt808.store import Item, Message

#: Status bits 18–21 → the contract's constellation names.
SYSTEMS: Final = {
    "gps_used": "GPS",
    "beidou_used": "BDS",
    "glonass_used": "GLONASS",
    "galileo_used": "GAL",
}
_SYSTEM_BITS: Final = {bit: SYSTEMS[name] for bit, name in STATUS_BITS.items() if name in SYSTEMS}


@dataclass(frozen=True)
class ReportItem:
    """What one location report gives: the store item, and why a lock part was left out."""

    item: Item
    ignored: str | None = None


def report_digest(phone: str, location: Location) -> int:
    """64 bits of SHA-256 over the terminal and the report as it re-encodes (time,
    position, items — a lock's counter and MAC among them): the same report sent again,
    alone or in a batch, has the same digest."""
    data = phone_key(phone).encode("ascii") + b"\0" + location.encode(None)
    if location.time is None:  # an impossible time (month 13, a hex digit) re-encodes as
        data += b"\0" + location.time_bcd  # zeros: the bytes sent tell such reports apart
    return int.from_bytes(hashlib.sha256(data).digest()[:8], "big", signed=True)


def position_payload(location: Location, moment: datetime, replayed: bool) -> dict[str, Any]:
    """The `position` payload (without node_id and seq) of one report."""
    payload: dict[str, Any] = {
        "ts": format_ts(moment),
        "fix": "none",
        "systems": [name for bit, name in _SYSTEM_BITS.items() if location.status >> bit & 1],
    }
    if replayed:  # a blind-area batch (0x0704 type 1); else the link flags a late send
        payload["replayed"] = True
    if location.place is not None:
        payload.update(
            fix="3d",
            lat=round(location.lat, 7),
            lon=round(location.lon, 7),
            speed_kmh=round(min(location.speed_kmh, 1000.0), 1),
            course_deg=float(location.course_deg % 360),
        )
        if -1000 <= location.alt_m <= 20000:
            payload["alt_m"] = float(location.alt_m)
    sats = location.extra("satellites")
    if sats is not None and isinstance(sats.value, int):
        payload["sats"] = sats.value
    return payload


def lock_payload(
    location: Location, device: CellularDevice, moment: datetime, replayed: bool
) -> tuple[dict[str, Any] | None, str | None]:
    """The `lock` payload of a lock's report, or (None, why it is left out): a BondWatch
    lock's block, else a third-party lock's common e-lock items (0x63, 0xD5)."""
    try:
        block = location.bondwatch
    except FrameError as err:
        return None, f"bad BondWatch block: {err}"
    if block is None or block.lock_id is None:
        return vendor_lock_payload(location, device, moment, replayed)
    if block.lock_id != device.lock_id:
        return None, (
            f"lock id {block.lock_id} is not the registered {device.lock_id} of phone "
            f"{device.phone}"
        )
    payload = _lock_fields(
        location, moment, replayed, block.lock_id, block.state_name, block.event_name
    )
    if block.battery_pct is not None and 0 <= block.battery_pct <= 100:
        payload["battery_pct"] = block.battery_pct
    if block.report_counter is not None and block.report_mac is not None:
        payload["counter"], payload["mac"] = block.report_counter, block.report_mac.hex()
    return payload, None


def vendor_lock_payload(
    location: Location, device: CellularDevice, moment: datetime, replayed: bool
) -> tuple[dict[str, Any] | None, str | None]:
    """The registered lock's state from a third-party lock's common e-lock items: 0x63
    (per lock: id BYTE[6], battery, seal 0x31) and 0xD5 (per lock: id BYTE[5], card,
    battery %, status bit 5 open), laid out as Traccar's `HuabaoProtocolDecoder` reads
    them (`devices.elock.tlv`). Their lock ids are hex (`0002604323`): the registry
    names the lock so. Such a lock signs nothing: no counter, no MAC."""
    events = vendor_lock_events(location, 0x0200)
    if not events:
        return None, None
    mine = next((e for e in events if e.lock_id == device.lock_id), None)
    if mine is None:
        return None, (
            f"lock ids {', '.join(e.lock_id for e in events)} of the report's lock items "
            f"are not the registered {device.lock_id} of phone {device.phone}"
        )
    payload = _lock_fields(location, moment, replayed, mine.lock_id, mine.state, mine.event)
    if mine.battery_pct is not None:  # a level (0–100 %) or None: `vendor_lock_events`
        payload["battery_pct"] = mine.battery_pct
    return payload, None


def _lock_fields(
    location: Location,
    moment: datetime,
    replayed: bool,
    lock_id: str,
    state: str,
    event: str | None,
) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "ts": format_ts(moment),
        "lock_id": lock_id,
        "state": state,
        "event": event or "status",
    }
    if replayed:
        payload["replayed"] = True
    if location.place is not None:  # not under the lock's MAC: an impossible one left out
        payload["lat"], payload["lon"] = round(location.lat, 7), round(location.lon, 7)
    return payload


def report_item(
    device: CellularDevice, location: Location, received: datetime, *, replayed: bool = False
) -> ReportItem:
    """The store item of one location report of `device` (`received`: when the gateway
    got it, the time of a report whose own time is missing or impossible)."""
    moment = location.time or received
    messages: list[Message] = []
    if device.positions:
        messages.append(
            (topics.position(device.node), position_payload(location, moment, replayed), False)
        )
    ignored: str | None = None
    if device.kind == "lock":
        lock, ignored = lock_payload(location, device, moment, replayed)
        if lock is not None:
            messages.append((topics.lock(device.node), lock, False))
    return ReportItem(Item(messages, report_digest(device.phone, location)), ignored)

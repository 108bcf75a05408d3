"""Third-party e-locks through the gateway: the common lock items of a 0x0200 report.

Real frames (tests/data/jt808/traccar_frames.json, from Traccar's `HuabaoProtocolDecoderTest`):
frame 32 carries item 0xD5 (one lock, `0002604323`, 83 %, status 0x0030: bit 5, open),
frame 23 item 0x63 (two locks, `cd91fe1314da` and `c3a19a6f6f3a`, both sealed: 0x31).
The layouts are those Traccar's `HuabaoProtocolDecoder` reads (devices/elock/tlv.py).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from contract import topics
from contract.cellular_registry import CellularDevice
from devices.elock.bodies import Location
from devices.elock.codec import decode
from edge.jt808.reports import report_item
from tests.realdata import TRACCAR_FRAMES

NODE = "TRK-VENDOR-1"
RECEIVED = datetime(2026, 12, 7, 4, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def frames() -> list[dict[str, str]]:
    frames: list[dict[str, str]] = json.loads(TRACCAR_FRAMES.read_text())["frames"]
    return frames


def locks_of(
    frames: list[dict[str, str]], index: int, lock_id: str
) -> tuple[list[Any], str | None, str]:
    """Frame `index` from a device registered with `lock_id`: its `lock` payloads, why a
    lock part was left out, and its phone."""
    message = decode(bytes.fromhex(frames[index]["hex"]))
    assert isinstance(message.body, Location)
    phone = message.header.phone
    device = CellularDevice(phone=phone, node_id=NODE, lock_id=lock_id)
    report = report_item(device, message.body, RECEIVED)
    locks = [p for topic, p, _ in report.item.messages if topic == topics.lock(NODE)]
    return locks, report.ignored, phone


def test_an_open_lock_of_item_d5_becomes_the_nodes_lock_report(
    frames: list[dict[str, str]],
) -> None:
    locks, ignored, _ = locks_of(frames, 32, "0002604323")
    assert ignored is None
    assert locks == [
        {
            "ts": "2022-05-12T02:11:38.000Z",
            "lock_id": "0002604323",
            "state": "open",
            "event": "status",
            "battery_pct": 83,
        }
    ]  # no position: the report's status says it is not positioned (bit 1 clear)
    assert "counter" not in locks[0] and "mac" not in locks[0]  # it signs nothing


def test_the_registered_lock_of_two_in_item_63_is_reported(
    frames: list[dict[str, str]],
) -> None:
    locks, ignored, _ = locks_of(frames, 23, "c3a19a6f6f3a")
    assert ignored is None
    assert [(p["lock_id"], p["state"], p.get("battery_pct")) for p in locks] == [
        ("c3a19a6f6f3a", "sealed", None)  # 0x63 gives volts, not a percentage
    ]


def test_lock_items_of_other_locks_are_left_out_with_the_reason(
    frames: list[dict[str, str]],
) -> None:
    locks, ignored, phone = locks_of(frames, 32, "EL-CELL-9")
    assert locks == []
    assert ignored == (
        f"lock ids 0002604323 of the report's lock items are not the registered EL-CELL-9 "
        f"of phone {phone}"
    )

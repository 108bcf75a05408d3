"""`elock.decode_frames_per_s`: JT/T 808 frames decoded per second on one core.

The mix is a BondWatch lock's traffic: location reports with the lock block (most),
batch uploads, heartbeats and command answers, in both header forms, plus the real
frames of `shared/data/jt808/traccar_frames.json` when that folder is present.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from devices.elock import profile
from devices.elock.block import BondWatchBlock, CommandResult
from devices.elock.bodies import BatchLocation, Heartbeat, Location, Transparent
from devices.elock.codec import decode, encode
from devices.elock.header import Header
from devices.elock.tlv import Extra, decode_item
from devices.errors import FrameError

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "jt808" / "traccar_frames.json"


def _frames() -> list[bytes]:
    block = BondWatchBlock(
        lock_id="L1",
        state=1,
        event=0,
        battery_pct=87,
        battery_mv=4080,
        wrong_passwords=0,
        trip_id="TRIP-000123",
    )
    location = Location(
        alarm=0,
        status=0x80002,
        lat=22.543096,
        lon=113.934528,
        alt_m=12,
        speed_kmh=63.5,
        course_deg=271,
        time=datetime(2026, 11, 23, 8, 15, 2, tzinfo=UTC),
        extras=(
            decode_item(0x01, (123456).to_bytes(4, "big")),
            Extra(0x31, b"\x0c"),
            decode_item(profile.TLV_BONDWATCH, block.encode()),
        ),
    )
    answer = BondWatchBlock(lock_id="L1", state=2, command_result=CommandResult(42, 2, 0, 0))
    frames = []
    for version in (None, 1):
        header = Header(msg_id=0, phone="13912345678", serial=1, version=version)
        frames += [encode(header, location)] * 6
        frames.append(encode(header, BatchLocation(1, (location,) * 5)))
        frames.append(encode(header, Heartbeat()))
        frames.append(encode(header, Transparent(profile.TRANSPARENT_TYPE, answer.encode())))
    if DATA.is_file():
        frames += [bytes.fromhex(f["hex"]) for f in json.loads(DATA.read_text())["frames"]]
    return frames


def run(seconds: float = 3.0) -> dict[str, dict[str, Any]]:
    frames = _frames()
    decoded = 0
    start = time.perf_counter()
    deadline = start + seconds
    while time.perf_counter() < deadline:
        for raw in frames:
            try:  # noqa: SIM105 - a context manager per frame would weigh on the figure
                decode(raw, strict=False)
            except FrameError:
                pass
        decoded += len(frames)
    elapsed = time.perf_counter() - start
    return {
        "elock.decode_frames_per_s": {
            "value": round(decoded / elapsed, 1),
            "unit": "1/s",
            "target": 10000.0,
            "better": "higher",
        }
    }


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))

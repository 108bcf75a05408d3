"""Every real frame of `jt808/traccar_frames.json` through the codec and the CLI.

Three checks:
* framing: which frames are well-formed, which have a wrong check code, and the
  precise reason for each malformed one (`MALFORMED` below, derived by reading the
  bytes: see the comments);
* the attribute Traccar asserts, where it is something this codec models (satellite
  count, e-lock items, door status); parsed out of the Java expression text;
* a golden file (`golden/traccar_frames.jsonl`, gpsd `.chk` style) of the full CLI
  output, reviewed by hand for the frames commented here.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from devices.elock.__main__ import decode_line
from devices.elock.codec import decode
from devices.errors import ChecksumError, FrameError
from tests.realdata import TRACCAR_FRAMES

HERE = Path(__file__).parent
GOLDEN = HERE / "golden" / "traccar_frames.jsonl"

#: index → substring of the reason. Derived from the bytes:
MALFORMED = {
    # 0x5501/0x5502 "7E55" vendor frames: the length field counts one byte more than
    # the frame holds; they would fit with no check code (their last byte is part of the body).
    19: "would fit if the frame had no check code",
    20: "would fit if the frame had no check code",
    21: "would fit if the frame had no check code",
    39: "would fit if the frame had no check code",
    41: "would fit if the frame had no check code",
    42: "would fit if the frame had no check code",
    # Raw 0x7E data bytes that the sender did not escape (a real line would split there).
    26: "unescaped 0x7E inside the frame at content offset 69",
    34: "unescaped 0x7E inside the frame at content offset 98",
    61: "unescaped 0x7E inside the frame at content offset 116",
    68: "unescaped 0x7E inside the frame at content offset 26",
    # Phone number bytes 8E F8 7D 00: a 0x7D data byte sent unescaped.
    27: "bad escape sequence 7D 00",
    # Latitude 01 58 7D 01 sent unescaped: un-escaping shortens the body by one.
    67: "it would fit if its 0x7D bytes were data",
    # Truncated: 107 of the announced 122 body bytes.
    71: "body length field says 122 bytes but the JT/T 808-2013 frame holds 107",
    # ASCII "(740190311185,1,001,ELOCK,3,529439)": another protocol altogether.
    40: "not a JT/T 808 frame: starts with 0x28 '('",
}
#: Well-formed frames whose check code is wrong (decoded leniently, flagged).
BAD_CHECK_CODE = {69}


@pytest.fixture(scope="module")
def frames() -> list[dict[str, str]]:
    data = json.loads(TRACCAR_FRAMES.read_text())
    frames: list[dict[str, str]] = data["frames"]
    assert len(frames) == 72
    return frames


def test_framing_and_check_codes(frames: list[dict[str, str]]) -> None:
    bad_check = set()
    errors: dict[int, tuple[str, bytes]] = {}
    for index, frame in enumerate(frames):
        raw = bytes.fromhex(frame["hex"])
        try:
            message = decode(raw, strict=False)
        except FrameError as err:
            errors[index] = (str(err), err.raw)
            continue
        if not message.checksum_ok:
            bad_check.add(index)
            with pytest.raises(ChecksumError) as caught:
                decode(raw, strict=True)
            assert caught.value.raw == raw
        else:
            assert decode(raw, strict=True) == message
    assert bad_check == BAD_CHECK_CODE
    assert set(errors) == set(MALFORMED)
    for index, reason in MALFORMED.items():
        text, kept = errors[index]
        assert reason in text, (index, text)
        assert kept == bytes.fromhex(frames[index]["hex"])


def _java_value(text: str) -> Any:
    text = text.strip()
    if text in ("true", "false"):
        return text == "true"
    if text.startswith('"'):
        return json.loads(text)  # Java string escapes (\\u0090) read the same as JSON's
    if text.startswith("0x"):
        return int(text, 16)
    return float(text)


def _items(record: dict[str, Any]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = record.get("items", [record])
    return items


def _extra(record: dict[str, Any], name: str) -> list[Any]:
    return [
        e["value"]
        for item in _items(record)
        for e in item.get("extras", [])
        if e.get("name") == name
    ]


def _modelled(key: str, record: dict[str, Any]) -> list[Any] | None:
    """The values this codec gives for a Traccar key, or None when it does not model it."""
    if key == "Position.KEY_SATELLITES":
        return _extra(record, "satellites")
    if key == "Position.KEY_EVENT":
        return [v["event"] for v in _extra(record, "lock_event")]
    if key == "Position.KEY_DRIVER_UNIQUE_ID" and _extra(record, "lock_event"):
        return [v.get("card") for v in _extra(record, "lock_event")]
    match = re.fullmatch(r'"lock(\d)(Locked|Battery)"', key)
    if match:
        index = int(match.group(1)) - 1
        values = []
        for locks in _extra(record, "lock_info") + _extra(record, "lock_list"):
            if index < len(locks):
                lock = locks[index]
                values.append(
                    lock.get("locked") if match.group(2) == "Locked" else lock.get("battery_v")
                )
        return values
    return None


def test_asserted_attributes_agree(frames: list[dict[str, str]]) -> None:
    checked = []
    for index, frame in enumerate(frames):
        if frame["verify"] != "verifyAttribute" or index in MALFORMED:
            continue
        key, _, value_text = frame["assert"].partition(", ")
        record = decode_line(frame["hex"])
        if value_text == "Position.ALARM_DOOR":
            flags = [
                f for item in _items(record) for f in item["status_flags"] + item["alarm_flags"]
            ]
            assert any("door" in f and "open" in f for f in flags), (index, flags)
            checked.append(index)
            continue
        values = _modelled(key, record)
        if values is None:
            continue  # a vendor item outside JT/T 808 and the lock items (power, ICCID, …)
        assert _java_value(value_text) in values, (index, frame["assert"], values)
        checked.append(index)
    # satellites ×2, driver id via lock event, lock2Battery, KEY_EVENT, lock1Locked, door
    assert checked == [0, 3, 22, 23, 25, 32, 66]


def test_positions_are_plausible(frames: list[dict[str, str]]) -> None:
    """Every verifyPosition(s) frame that is well-formed gives positions with a time."""
    for index, frame in enumerate(frames):
        if frame["verify"] not in ("verifyPosition", "verifyPositions") or index in MALFORMED:
            continue
        record = decode_line(frame["hex"])
        if record["msg_id"] not in (0x0200, 0x0704):
            continue  # vendor location messages (0x0210) stay raw
        for item in _items(record):
            assert -90 <= item["lat"] <= 90
            assert -180 <= item["lon"] <= 180
            assert item["time"] is not None
            assert item["time"].endswith("Z")


def test_hand_checked_values(frames: list[dict[str, str]]) -> None:
    # Frame 14: status 0x..0C → south and west; lat 0x01651EC7 = 23404231, lon 0x02CAEC64.
    loc = decode_line(frames[14]["hex"])
    assert (loc["lat"], loc["lon"]) == (-23.404231, -46.85322)
    # BCD 24 08 24 23 48 50 in GMT+8 is 15:48:50 UTC the same day.
    assert loc["time"] == "2024-08-24T15:48:50.000Z"
    # Frame 32: 0xD5 lock item: lock 0002604323, battery 83 %, status 0x0030 (bit 5: open).
    lock = _extra(decode_line(frames[32]["hex"]), "lock_info")[0][0]
    assert lock == {
        "lock_id": "0002604323",
        "card": "2795980277",
        "battery_pct": 83,
        "status": 0x30,
        "locked": False,
    }
    # Frame 2: a 2019 registration (version bit, 10-byte phone).
    reg = decode_line(frames[2]["hex"])
    assert (reg["version"], reg["phone"], reg["form"], reg["model"]) == (
        1,
        "00000866496077582164",
        "2019",
        "MD300",
    )
    # Frame 33: a 2011-form registration with the plate 粤B88888 in GBK.
    assert decode_line(frames[33]["hex"])["plate"] == "粤B88888"


def test_cli_matches_golden(frames: list[dict[str, str]], tmp_path: Path) -> None:
    source = tmp_path / "frames.hex"
    source.write_text("# traccar frames\n" + "\n".join(f["hex"] for f in frames) + "\n\n")
    result = subprocess.run(
        [sys.executable, "-m", "devices.elock", "decode", str(source)],
        capture_output=True,
        text=True,
        check=True,
        cwd=HERE.parents[2],
    )
    got = [json.loads(line) for line in result.stdout.splitlines()]
    expected = [json.loads(line) for line in GOLDEN.read_text().splitlines()]
    assert len(got) == 72
    assert got == expected
    # the contract's fields
    first_location = got[1]
    for name in (
        "msg_id",
        "phone",
        "serial",
        "checksum_ok",
        "alarm",
        "status",
        "lat",
        "lon",
        "alt_m",
        "speed_kmh",
        "course_deg",
        "time",
        "extras",
    ):
        assert name in first_location
    assert isinstance(first_location["msg_id"], int)
    assert all(("error" in r) != ("msg_id" in r) for r in got)

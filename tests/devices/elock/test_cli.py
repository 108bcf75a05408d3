"""`python -m devices.elock decode FILE` as docs/contract.md describes it."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from devices.elock.bodies import Location
from devices.elock.codec import encode
from devices.elock.header import Header

ROOT = Path(__file__).resolve().parents[3]


def _run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "devices.elock", *args],
        capture_output=True,
        text=True,
        input=stdin,
        cwd=ROOT,
        check=False,
    )


def test_one_json_line_per_frame_line(tmp_path: Path) -> None:
    south_west = Location(
        alarm=1,
        status=2,
        lat=-33.865143,
        lon=-70.6,
        alt_m=520,
        speed_kmh=42.5,
        course_deg=90,
        time=datetime(2026, 1, 1, 0, 0, 5, tzinfo=UTC),
    )
    good = encode(Header(msg_id=0, phone="13912345678", serial=9, version=1), south_west).hex()
    bad_check = bytearray(bytes.fromhex(good))
    bad_check[-2] ^= 0x01
    source = tmp_path / "frames.txt"
    source.write_text(f"# comment\n{good}\n\n{bytes(bad_check).hex()}\nzz12\n7e0102\n")
    result = _run("decode", str(source))
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == 4
    first = lines[0]
    assert (first["msg_id"], first["phone"], first["serial"], first["checksum_ok"]) == (
        0x0200,
        "00000000013912345678",
        9,
        True,
    )
    assert (
        first["lat"],
        first["lon"],
        first["alt_m"],
        first["speed_kmh"],
        first["course_deg"],
    ) == (-33.865143, -70.6, 520, 42.5, 90)
    assert first["time"] == "2026-01-01T00:00:05.000Z"
    assert first["alarm"] == 1
    assert first["alarm_flags"] == ["emergency"]
    assert first["status"] == 2 | 4 | 8
    assert first["extras"] == []
    assert lines[1]["checksum_ok"] is False
    assert lines[1]["lat"] == -33.865143
    assert lines[2] == {"error": "not hexadecimal text", "input": "zz12"}
    assert lines[3]["error"] == "not a complete JT/T 808 frame: no closing 0x7E flag"


def test_stdin_and_missing_file() -> None:
    result = _run("decode", "-", stdin="7e0002000004304832546500b7ca7e\n")
    assert json.loads(result.stdout) == {
        "msg_id": 2,
        "phone": "043048325465",
        "serial": 183,
        "checksum_ok": True,
        "version": None,
    }
    missing = _run("decode", "/nonexistent/frames.txt")
    assert missing.returncode == 2
    assert "cannot read" in missing.stderr

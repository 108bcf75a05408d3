"""Bad images give a clear ImageError (a DeviceError and ValueError), never a crash."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from devices.errors import DeviceError
from devices.ocr import GateReader, ImageError
from devices.ocr.reader import decode_image, load_image

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (np.zeros((0, 0, 3), np.uint8), "empty"),
        (np.zeros((8, 8, 3), np.uint8), "too small"),
        (np.zeros((100, 100, 3), np.float32), "8-bit"),
        (np.zeros((100, 100, 5), np.uint8), "shape"),
        ("not an image", "numpy"),
    ],
)
def test_unusable_arrays(image, message):
    with pytest.raises(ImageError, match=message) as info:
        GateReader().read(image)
    assert isinstance(info.value, DeviceError)
    assert isinstance(info.value, ValueError)


def test_huge_image_is_refused_before_any_work():
    huge = np.lib.stride_tricks.as_strided(
        np.zeros(3, np.uint8), shape=(9000, 9000, 3), strides=(0, 0, 1)
    )
    with pytest.raises(ImageError, match="too large"):
        GateReader().read(huge)


def test_corrupt_and_empty_files(tmp_path):
    with pytest.raises(ImageError, match="empty"):
        decode_image(b"")
    with pytest.raises(ImageError, match="corrupt"):
        decode_image(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    path = tmp_path / "cut.jpg"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    with pytest.raises(ImageError):
        load_image(str(path))


def test_blank_image_reads_nothing(reader):
    reading = reader.read(np.full((480, 640, 3), 128, np.uint8))
    assert reading.containers == []
    assert reading.plate is None


def test_cli_reports_bad_files_as_json_and_keeps_going(tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"garbage")
    result = subprocess.run(
        [sys.executable, "-m", "devices.ocr", "read", str(bad), str(tmp_path / "missing.jpg")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 2
    assert result.returncode == 1
    import json

    first, second = (json.loads(line) for line in lines)
    assert first["file"] == str(bad)
    assert "corrupt" in first["error"]
    assert first["containers"] == []
    assert "No such file" in second["error"]

"""Image bytes from outside are refused by the size their header declares, before any
pixel is decoded (`devices.image_file`): a few hundred bytes declaring 30,000 × 30,000
pixels must not cost gigabytes, and whatever OpenCV itself refuses is an ImageError."""

from __future__ import annotations

import io
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from devices.camera.capture import Frame
from devices.camera.focus import select_sharpest, sharpness
from devices.camera.sources import FolderSource
from devices.image_file import MAX_PIXELS, ImageError, declared_size, decode
from devices.ocr import GateReader

ROOT = Path(__file__).resolve().parents[2]


def claiming(width: int, height: int, fmt: str = "JPEG") -> bytes:
    """A small real image whose header says `width`×`height` (JPEG: its frame header
    rewritten; PNG: its IHDR rewritten and its CRC made right)."""
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (90, 120, 30)).save(out, fmt)
    data = bytearray(out.getvalue())
    if fmt == "JPEG":
        sof = data.find(b"\xff\xc0")
        struct.pack_into(">HH", data, sof + 5, height, width)
    else:
        import zlib

        ihdr = data.find(b"IHDR")
        struct.pack_into(">II", data, ihdr + 4, width, height)
        struct.pack_into(">I", data, ihdr + 17, zlib.crc32(bytes(data[ihdr : ihdr + 17])))
    return bytes(data)


def png(width: int, height: int) -> bytes:
    ok, buffer = cv2.imencode(".png", np.full((height, width, 3), 200, np.uint8))
    assert ok
    return bytes(buffer)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_a_declared_size_above_the_limit_is_refused_from_the_header(fmt: str) -> None:
    data = claiming(7_000, 6_000, fmt)  # 42 Mpx
    assert declared_size(data) == (7_000, 6_000)
    with pytest.raises(ImageError, match="too large: 7000x6000"):
        decode(data)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
@pytest.mark.parametrize("side", [30_000, 65_000])
def test_a_declared_bomb_is_refused_from_its_header(fmt: str, side: int) -> None:
    with pytest.raises(ImageError, match="too large"):
        decode(claiming(side, side, fmt))


def test_the_refusal_costs_no_memory_for_the_pixels(tmp_path: Path) -> None:
    """Under an address-space limit of 1 GiB, far below the 2.7 GB that 30,000 × 30,000
    pixels take: decoding first would fail with OpenCV's out-of-memory error instead."""
    bomb = tmp_path / "bomb.jpg"
    bomb.write_bytes(claiming(30_000, 30_000))
    script = textwrap.dedent(
        f"""
        import resource
        from devices.image_file import ImageError, read_file
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
        try:
            read_file({str(bomb)!r})
        except ImageError as err:
            print("refused:", err)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("refused: image too large"), result.stdout


def test_sizes_within_the_limits_decode_as_before() -> None:
    image = decode(png(320, 200))
    assert image.shape == (200, 320, 3) and int(image[0, 0, 0]) == 200
    assert MAX_PIXELS > 320 * 200


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"\x00" * 100, "not a decodable image"),
        (png(8, 400), "too small"),
    ],
)
def test_other_bad_bytes_are_image_errors(data: bytes, message: str) -> None:
    with pytest.raises(ImageError, match=message):
        decode(data)


def test_a_frame_far_longer_than_wide_is_refused_by_the_reader() -> None:
    """16 × 200,000 is within the pixel limit; scaled to the reader's working size it would
    be less than one pixel high."""
    with pytest.raises(ImageError, match="too narrow"):
        GateReader().read(np.zeros((16, 200_000, 3), np.uint8))


def test_a_one_row_frame_has_a_sharpness_and_does_not_stop_the_choice() -> None:
    """A 2000 × 1 frame among a camera's burst: measured (0, nothing to see), and the
    sharpest frames of the burst are still chosen."""
    thin = np.zeros((1, 2_000, 3), np.uint8)
    assert sharpness(thin) == 0.0
    assert sharpness(np.zeros((3, 4_000), np.uint8)) == 0.0
    edges = np.zeros((120, 160, 3), np.uint8)
    edges[:, ::8] = 255  # sharp stripes
    blurred = cv2.GaussianBlur(edges, (15, 15), 5)
    burst = [
        Frame(image=blurred, ts=0.0, index=0),
        Frame(image=thin, ts=0.1, index=1),
        Frame(image=edges, ts=0.2, index=2),
    ]
    assert [f.index for f in select_sharpest(burst, 2)] == [0, 2]


def test_a_camera_folder_skips_a_bomb_and_reads_the_next_frame(tmp_path: Path) -> None:
    (tmp_path / "0001.jpg").write_bytes(claiming(30_000, 30_000))
    (tmp_path / "0002.png").write_bytes(claiming(65_000, 65_000, "PNG"))
    (tmp_path / "0003.png").write_bytes(png(160, 120))
    source = FolderSource(tmp_path, poll_s=0.01)
    assert source.read() is None  # skipped, with a warning
    assert source.read() is None
    frame = source.read()
    assert frame is not None and frame.shape == (120, 160, 3)

"""The evidence store's two edges below the REST API: the JPEG check (`server.evidence.jpeg`)
honours the configured pixel limit, not Pillow's own, and the folder storage takes the
same image twice at once (a gate's retry while its first upload is being stored)."""

from __future__ import annotations

import io
import struct
import threading
from pathlib import Path

import pytest
from PIL import Image
from pydantic import ValidationError

from server.evidence.config import EvidenceSettings
from server.evidence.jpeg import NotJpeg, check_jpeg
from server.evidence.storage import FolderStorage


def jpeg_claiming(width: int, height: int) -> bytes:
    """A small real JPEG whose frame header (SOF0) says `width`×`height`: Pillow reads
    the size from the header alone, so no large image is ever built."""
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (90, 120, 30)).save(out, "JPEG")
    data = bytearray(out.getvalue())
    sof = data.find(b"\xff\xc0")
    assert sof > 0
    struct.pack_into(">HH", data, sof + 5, height, width)
    return bytes(data)


@pytest.mark.parametrize(("width", "height"), [(10_000, 9_500), (12_000, 12_000)])
def test_an_image_above_pillows_warning_limit_passes_when_the_setting_allows_it(
    width: int, height: int
) -> None:
    """95 and 144 Mpx are above Pillow's warning (89.5 Mpx) and within the setting."""
    limit = EvidenceSettings(max_pixels=150_000_000).max_pixels
    assert check_jpeg(jpeg_claiming(width, height), limit).width == width


def test_an_image_above_the_setting_is_refused_with_the_setting_named() -> None:
    with pytest.raises(NotJpeg, match="more than 40000000 allowed"):
        check_jpeg(jpeg_claiming(8_000, 6_000), 40_000_000)


def test_an_image_above_pillows_own_limit_is_refused_as_too_large() -> None:
    with pytest.raises(NotJpeg, match=r"more than|too large"):
        check_jpeg(jpeg_claiming(65_000, 65_000), 178_000_000)


def test_a_pixel_limit_that_pillow_cannot_read_is_refused_in_the_settings() -> None:
    with pytest.raises(ValidationError, match="max_pixels"):
        EvidenceSettings(max_pixels=200_000_000)


def test_the_same_image_stored_twice_at_once_is_stored_once_without_an_error(
    tmp_path: Path,
) -> None:
    storage = FolderStorage(tmp_path)
    data = jpeg_claiming(64, 48)
    errors: list[BaseException] = []

    def put(key: str, start: threading.Barrier) -> None:
        start.wait()
        try:
            storage.put(key, data)
        except BaseException as err:  # collected and asserted below
            errors.append(err)

    for round_ in range(25):
        key = f"G1/P{round_}/0.jpg"
        start = threading.Barrier(2)
        threads = [threading.Thread(target=put, args=(key, start)) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert storage.get(key) == data
    assert [p.name for p in tmp_path.rglob("*.tmp")] == []

"""Capture → OCR → passage when cameras or the OCR fail: what was read, never a guess."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, cast

import cv2
import numpy as np
import pytest

from devices.camera import Camera, CameraConfig, Frame
from devices.camera.capture import CaptureTimeout
from devices.ocr import ContainerResult, GateReader, ImageReading, PlateResult
from edge.gate.vision import OcrWorker, capture_passage

NUMBER = "CSQU3054383"


class FakeCamera:
    def __init__(self, name: str, frames: list[Frame] | Exception) -> None:
        self.config = CameraConfig(type="opencv", url=f"folder:///{name}", name=name)
        self._frames = frames

    async def capture_burst(self) -> list[Frame]:
        if isinstance(self._frames, Exception):
            raise self._frames
        return self._frames


class FakeReader(GateReader):
    """Reads NUMBER from images whose first pixel is 200, fails on 13, nothing otherwise."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def read(self, image: Any) -> ImageReading:
        self.calls += 1
        if image[0, 0, 0] == 13:
            raise RuntimeError("onnxruntime: bad allocation")
        if image[0, 0, 0] == 200:
            return ImageReading([ContainerResult(NUMBER, 0.95, True, False)])
        return ImageReading()


def frames(value: int, n: int = 3, age_s: float = 0.0) -> list[Frame]:
    out = []
    for i in range(n):
        image = np.full((48, 64, 3), value, dtype=np.uint8)
        image[10:20, 10 + i : 30] = 255 - value  # sharpness differs between frames
        out.append(Frame(image=image, ts=time.time() - age_s, index=i))
    return out


async def capture(tmp_path: Path, cameras: list[FakeCamera], reader: GateReader) -> Any:
    worker = OcrWorker(reader)
    try:
        return await capture_passage(
            cast(list[Camera], cameras),
            worker,
            node_id="G1",
            passage_id="P-1",
            images_dir=tmp_path,
            day="2026-11-23",
            frames_per_camera=2,
            max_frame_age_s=5.0,
            ocr_timeout_s=10.0,
        )
    finally:
        worker.close()


async def test_all_cameras_read_and_saved(tmp_path):
    reader = FakeReader()
    result = await capture(tmp_path, [FakeCamera("rear", frames(200))], reader)
    assert [c.number for c in result.reading.containers] == [NUMBER]
    assert reader.calls == 2
    assert result.images == [
        "gate://G1/2026-11-23/P-1/rear-0.jpg",
        "gate://G1/2026-11-23/P-1/rear-1.jpg",
    ]
    assert (tmp_path / "2026-11-23/P-1/rear-0.jpg").read_bytes()[:2] == b"\xff\xd8"
    assert result.camera_problems == {} and result.ocr_problem is None


async def test_a_failed_camera_is_reported_and_the_other_one_read(tmp_path):
    cams = [
        FakeCamera("rear", CaptureTimeout("camera rear: no frame within 5.0 s")),
        FakeCamera("side", frames(200)),
    ]
    result = await capture(tmp_path, cams, FakeReader())
    assert result.camera_problems == {"rear": "camera rear: no frame within 5.0 s"}
    assert result.cameras_ok == ["side"]
    assert [c.number for c in result.reading.containers] == [NUMBER]
    assert all("/side-" in ref for ref in result.images)


async def test_stale_frames_are_not_used(tmp_path):
    reader = FakeReader()
    result = await capture(tmp_path, [FakeCamera("rear", frames(200, age_s=60))], reader)
    assert "old (stream stalled?)" in result.camera_problems["rear"]
    assert reader.calls == 0
    assert result.reading.containers == [] and result.images == []


async def test_ocr_failure_gives_empty_containers_and_a_problem(tmp_path):
    result = await capture(tmp_path, [FakeCamera("rear", frames(13))], FakeReader())
    assert result.reading.containers == []
    assert result.reading.plate is None
    assert result.frames_read == 0
    assert result.ocr_problem is not None and "bad allocation" in result.ocr_problem
    assert len(result.images) == 2  # the evidence is kept even when unread


@pytest.mark.parametrize("value", [0, 90])
async def test_nothing_legible_means_no_containers(tmp_path, value):
    result = await capture(tmp_path, [FakeCamera("rear", frames(value))], FakeReader())
    assert result.reading.containers == [] and result.ocr_problem is None
    assert result.frames_read == 2


class BoxReader(FakeReader):
    """Reads NUMBER and a plate, each where it was found."""

    def read(self, image: Any) -> ImageReading:
        self.calls += 1
        return ImageReading(
            [ContainerResult(NUMBER, 0.95, True, False, box=(10.0, 8.0, 40.0, 22.0))],
            PlateResult("粤A·D3K21", 0.61, True, box=(30.0, 30.0, 90.0, 47.0)),  # cut at 64 px
        )


async def test_evidence_is_each_frame_and_a_crop_of_each_reading(tmp_path):
    result = await capture(tmp_path, [FakeCamera("rear", frames(200))], BoxReader())
    frames_, crops = result.evidence[:2], result.evidence[2:]
    assert [(e.n, e.meta.kind, e.path.name) for e in frames_] == [
        (0, "frame", "rear-0.jpg"),
        (1, "frame", "rear-1.jpg"),
    ]
    first = frames_[0].meta.texts
    assert [(t.kind, t.text, t.confidence, t.needs_review) for t in first] == [
        ("container", NUMBER, 0.95, False),
        ("plate", "粤A·D3K21", 0.61, True),
    ]
    assert first[1].box == (30.0, 30.0, 64.0, 47.0)  # clipped to the 64x48 frame
    assert [(e.n, e.meta.frame, e.path.name) for e in crops] == [
        (2, 0, "rear-0-crop-0.jpg"),
        (3, 0, "rear-0-crop-1.jpg"),
        (4, 1, "rear-1-crop-0.jpg"),
        (5, 1, "rear-1-crop-1.jpg"),
    ]
    number_crop = crops[0]
    assert number_crop.path.read_bytes()[:3] == b"\xff\xd8\xff"
    decoded = cv2.imread(str(number_crop.path))
    assert decoded is not None
    shape = decoded.shape
    (box,) = number_crop.meta.texts
    x0, y0, x1, y1 = box.box
    assert box.text == NUMBER and 0 < x0 < x1 <= shape[1] and 0 < y0 < y1 <= shape[0]
    assert x1 - x0 == pytest.approx(30.0) and y1 - y0 == pytest.approx(14.0)


async def test_no_reading_no_crop(tmp_path):
    result = await capture(tmp_path, [FakeCamera("rear", frames(90))], FakeReader())
    assert [(e.meta.kind, e.meta.texts) for e in result.evidence] == [("frame", []), ("frame", [])]


class OddReader(FakeReader):
    """A plate the contract's boxes cannot carry (no text), beside a good number."""

    def read(self, image: Any) -> ImageReading:
        self.calls += 1
        return ImageReading(
            [ContainerResult(NUMBER, 0.95, True, False, box=(10.0, 8.0, 40.0, 22.0))],
            PlateResult("", 0.5, True, box=(1.0, 1.0, 5.0, 5.0)),
        )


async def test_a_reading_the_boxes_cannot_carry_costs_the_passage_nothing(tmp_path):
    result = await capture(tmp_path, [FakeCamera("rear", frames(200))], OddReader())
    assert [c.number for c in result.reading.containers] == [NUMBER]
    assert [t.text for t in result.evidence[0].meta.texts] == [NUMBER]
    assert len(result.evidence) == 4  # two frames, a crop of the number in each

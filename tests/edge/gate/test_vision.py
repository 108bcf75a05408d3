"""Capture → OCR → passage when cameras or the OCR fail: what was read, never a guess."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, cast

import numpy as np
import pytest

from devices.camera import Camera, CameraConfig, Frame
from devices.camera.capture import CaptureTimeout
from devices.ocr import ContainerResult, GateReader, ImageReading
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

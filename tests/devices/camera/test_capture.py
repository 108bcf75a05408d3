"""Capture from image folders and video files; reconnect; bursts around a trigger."""

import asyncio
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from pydantic import ValidationError

from devices.camera import Camera, CameraConfig, open_source
from devices.camera.capture import CaptureTimeout
from devices.errors import TransportError


def _frame(i: int) -> Any:
    img = np.zeros((120, 160, 3), np.uint8)
    cv2.putText(img, str(i), (20, 90), cv2.FONT_HERSHEY_SIMPLEX, 2.5, (255, 255, 255), 3)
    return img


def _write(folder: Path, i: int) -> None:
    cv2.imwrite(str(folder / f"{i:04d}.png"), _frame(i))


def test_config_rejects_unknown_fields_and_types():
    with pytest.raises(ValidationError):
        CameraConfig.model_validate({"type": "opencv", "url": "/dev/video0", "colour": "red"})
    with pytest.raises(ValidationError):
        CameraConfig(type="gstreamer", url="/dev/video0")


def test_open_source_refuses_missing_targets(tmp_path):
    with pytest.raises(TransportError):
        open_source(f"folder://{tmp_path}/missing")
    with pytest.raises(TransportError):
        open_source(str(tmp_path / "missing.avi"))


async def test_folder_burst_has_frames_before_and_after_trigger(tmp_path):
    for i in range(5):
        _write(tmp_path, i)
    cfg = CameraConfig(
        type="opencv",
        url=f"folder://{tmp_path}",
        frames_before=2,
        frames_after=3,
        burst_timeout_s=3,
    )
    async with Camera(cfg) as cam:
        for _ in range(100):
            if cam._index >= 5:
                break
            await asyncio.sleep(0.02)
        burst = asyncio.create_task(cam.capture_burst())
        await asyncio.sleep(0.1)
        for i in range(5, 9):
            _write(tmp_path, i)
        frames = await burst
    assert [f.index for f in frames] == [3, 4, 5, 6, 7]
    assert all(f.image.shape == (120, 160, 3) for f in frames)


async def test_plain_directory_path_and_video_file(tmp_path):
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter.fourcc(*"MJPG"), 10, (160, 120))
    for i in range(6):
        writer.write(_frame(i))
    writer.release()
    cfg = CameraConfig(
        type="opencv", url=str(video), frames_before=0, frames_after=4, burst_timeout_s=3
    )
    async with Camera(cfg) as cam:
        frames = await cam.capture_burst()
    assert 1 <= len(frames) <= 4
    assert frames[0].image.shape == (120, 160, 3)


async def test_reconnects_when_the_folder_appears(tmp_path, caplog):
    folder = tmp_path / "later"
    cfg = CameraConfig(
        type="opencv",
        url=str(folder),
        frames_before=0,
        frames_after=1,
        burst_timeout_s=3,
        reconnect_min_s=0.05,
    )
    async with Camera(cfg) as cam:
        await asyncio.sleep(0.3)
        assert not cam.connected
        folder.mkdir()
        _write(folder, 1)
        frames = await cam.capture_burst()
        assert cam.connected
    assert len(frames) == 1
    lost = [r for r in caplog.records if "lost" in r.getMessage()]
    assert len(lost) == 1  # logged once, not on every retry


async def test_no_frames_is_a_clear_timeout(tmp_path):
    cfg = CameraConfig(
        type="opencv",
        url=f"folder://{tmp_path}",
        frames_before=2,
        frames_after=2,
        burst_timeout_s=0.3,
    )
    async with Camera(cfg) as cam:
        with pytest.raises(CaptureTimeout, match="no frame"):
            await cam.capture_burst()

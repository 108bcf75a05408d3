"""The camera stub renders a known number; devices.camera captures it; OCR reads it back."""

import asyncio
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from devices.camera import Camera, CameraConfig, select_sharpest
from devices.ocr import GateReader
from firmware_stubs.camera.render import Scene, render_door

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def stub(tmp_path):
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "firmware_stubs.camera",
            "--number",
            "MSKU9070323",
            "--number",
            "TGHU8643952",
            "--iso-type",
            "45G1",
            "--folder",
            str(tmp_path / "frames"),
            "--fps",
            "20",
        ],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    urls = []
    for _ in range(3):
        line = proc.stdout.readline().strip()
        if line == "READY":
            break
        urls.append(line)
    yield proc, urls
    assert proc.stdin is not None
    proc.stdin.write("quit\n")
    proc.stdin.flush()
    proc.wait(timeout=10)


@pytest.mark.slow
async def test_mjpeg_stream_is_captured_and_read(stub):
    _proc, urls = stub
    http_url = urls[0]
    assert http_url.startswith("http://127.0.0.1:")
    cfg = CameraConfig(
        type="opencv", url=http_url, frames_before=2, frames_after=3, burst_timeout_s=10
    )
    async with Camera(cfg) as cam:
        frames = await cam.capture_burst()
    best = select_sharpest(frames, 1)[0]
    reading = GateReader().read(best.image)
    top = reading.containers[0]
    assert top.number == "MSKU9070323"
    assert top.check_digit_ok
    assert top.iso_type == "45G1"


@pytest.mark.slow
async def test_trigger_then_folder_url_gives_the_next_number(stub):
    _proc, urls = stub
    folder_url = urls[1]
    assert folder_url.startswith("folder://")
    base = urls[0].rsplit("/", 1)[0]
    shown = await asyncio.to_thread(
        lambda: urllib.request.urlopen(f"{base}/trigger", timeout=5).read().decode()
    )
    assert "TGHU8643952" in shown
    cfg = CameraConfig(
        type="opencv", url=folder_url, frames_before=6, frames_after=0, burst_timeout_s=5
    )
    async with Camera(cfg) as cam:
        await asyncio.sleep(0.5)
        frames = await cam.capture_burst()
    assert len(frames) == 6  # three from the first scene, three from the trigger
    reading = GateReader().read(frames[-1].image)
    assert reading.containers[0].number == "TGHU8643952"


def test_rendered_door_is_deterministic():
    a = render_door(Scene("CSQU3054383", seed=3))
    b = render_door(Scene("CSQU3054383", seed=3))
    assert a.shape == (1080, 1920, 3)
    assert (a == b).all()

"""The camera stub renders a known number; devices.camera captures it; OCR reads it back."""

import argparse
import asyncio
import contextlib
import json
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest

from devices.camera import Camera, CameraConfig, select_sharpest
from devices.camera.capture import CaptureTimeout, Frame
from devices.ocr import GateReader
from firmware_stubs.camera.__main__ import frame_size
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
        frames: list[Frame] = []
        async with asyncio.timeout(20):  # a loaded machine decodes 1080p JPEGs slowly
            while len(frames) < 6:
                await asyncio.sleep(0.2)
                with contextlib.suppress(CaptureTimeout):  # none read yet
                    frames = await cam.capture_burst()
    assert len(frames) == 6  # three from the first scene, three from the trigger
    reading = GateReader().read(frames[-1].image)
    assert reading.containers[0].number == "TGHU8643952"


def test_rendered_door_is_deterministic():
    a = render_door(Scene("CSQU3054383", seed=3))
    b = render_door(Scene("CSQU3054383", seed=3))
    assert a.shape == (1080, 1920, 3)
    assert (a == b).all()


def test_size_option_parses_width_by_height_and_refuses_nonsense():
    assert frame_size("960x540") == (960, 540)
    assert frame_size("1280X720") == (1280, 720)
    for bad in ("960", "x540", "960x", "big", "100x100", "5000x540"):
        with pytest.raises(argparse.ArgumentTypeError):
            frame_size(bad)
    refused = subprocess.run(
        [sys.executable, "-m", "firmware_stubs.camera", "--size", "20x20"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 2
    assert "160..4096" in refused.stderr


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as res:
        body: bytes = res.read()
    return body


@pytest.mark.slow
def test_small_frames_are_served_and_each_scene_reads_its_own_number():
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "firmware_stubs.camera",
            "--size",
            "960x540",
            "--number",
            "CSQU3054383",
            "--number",
            "TGHU8643952",
        ],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdin is not None
    try:
        base = proc.stdout.readline().strip().rsplit("/", 1)[0]
        assert proc.stdout.readline().strip() == "READY"
        reader = GateReader()
        read = []
        for scene in (1, 2, 3):
            if scene > 1:
                shown = json.loads(_get(f"{base}/trigger"))
                assert shown["scene"] == str(scene)
            data = np.frombuffer(_get(f"{base}/frame.jpg"), np.uint8)
            image = cv2.imdecode(data, cv2.IMREAD_COLOR)
            assert image is not None and image.shape == (540, 960, 3)
            top = reader.read(image).containers[0]
            assert top.check_digit_ok and not top.needs_review
            read.append(top.number)
        assert read == ["CSQU3054383", "TGHU8643952", "CSQU3054383"]
    finally:
        proc.stdin.write("quit\n")
        proc.stdin.flush()
        proc.wait(timeout=10)


@pytest.mark.slow
def test_owner_code_and_serial_are_far_enough_apart_to_be_two_words():
    # Drawn 0.6 character heights apart, this door read as "TGHU8" + "864395" + "2"
    # (the detector took the serial's first digit into the owner code's box) and gave
    # no number at all. A character's width apart, it reads.
    image = render_door(Scene("TGHU8643952", "22G1", seed=1))
    top = GateReader().read(image).containers[0]
    assert (top.number, top.check_digit_ok, top.needs_review) == ("TGHU8643952", True, False)


def test_with_stdin_from_dev_null_it_serves_until_sigterm():
    # The demo starts its children with stdin /dev/null: end of input must not end it.
    proc = subprocess.Popen(
        [sys.executable, "-m", "firmware_stubs.camera", "--size", "320x180"],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    try:
        url = proc.stdout.readline().strip()
        assert proc.stdout.readline().strip() == "READY"
        base = url.rsplit("/", 1)[0]
        frame = np.frombuffer(_get(f"{base}/frame.jpg"), np.uint8)
        image = cv2.imdecode(frame, cv2.IMREAD_COLOR)
        assert image is not None and image.shape == (180, 320, 3)
        assert proc.poll() is None
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0

"""Fusion of several views of a passage, the contract mapping, and the read command."""

import json
import subprocess
import sys
from pathlib import Path

import cv2

from contract.payloads import ContainerReading, PlateReading
from devices.ocr import ContainerResult, ImageReading, PlateResult, fuse
from firmware_stubs.camera.render import Scene, render_door

ROOT = Path(__file__).resolve().parents[3]


def _res(number: str, conf: float, ok: bool = True, review: bool = False) -> ContainerResult:
    return ContainerResult(number, conf, ok, review)


def test_agreeing_views_raise_confidence():
    views = [
        ImageReading([_res("TGHU8643952", 0.75, review=True)]),
        ImageReading([_res("TGHU8643952", 0.7, review=True)]),
    ]
    passage = fuse(views)
    (top,) = passage.containers
    assert top.agreement == 2
    assert top.confidence > 0.9
    assert not top.needs_review


def test_two_valid_lookalike_numbers_go_to_review():
    views = [ImageReading([_res("BEAU2576878", 0.95)]), ImageReading([_res("BFAU2576870", 0.9)])]
    passage = fuse(views)
    assert len(passage.containers) == 1
    assert passage.containers[0].needs_review
    assert "BFAU2576870" in passage.containers[0].alternatives


def test_unverified_number_stays_in_review_however_often_read():
    views = [ImageReading([_res("TEMU0524620", 0.4, ok=False, review=True)])] * 3
    (top,) = fuse(views).containers
    assert top.needs_review
    assert top.agreement == 3


def test_plate_by_majority_and_contract_types():
    views = [
        ImageReading([], PlateResult("粤B12345", 0.9, False)),
        ImageReading([], PlateResult("粤B12345", 0.95, False)),
        ImageReading([], PlateResult("粤B12346", 0.99, False)),
    ]
    passage = fuse(views)
    assert passage.plate is not None
    assert passage.plate.text == "粤B12345"
    PlateReading.model_validate(passage.plate.summary())
    summary = _res("TGHU8643952", 0.97).summary()
    ContainerReading.model_validate(summary)
    assert summary == {
        "number": "TGHU8643952",
        "confidence": 0.97,
        "check_digit_ok": True,
        "needs_review": False,
    }


def test_read_command_outputs_contract_json_lines(tmp_path):
    path = tmp_path / "door.jpg"
    cv2.imwrite(str(path), render_door(Scene("MSKU9070323", "45G1", seed=2)))
    result = subprocess.run(
        [sys.executable, "-m", "devices.ocr", "read", str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    line = json.loads(result.stdout)
    assert set(line) == {"file", "containers", "plate", "elapsed_ms"}
    assert line["containers"][0]["number"] == "MSKU9070323"
    assert line["containers"][0]["check_digit_ok"] is True
    assert line["containers"][0]["iso_type"] == "45G1"
    ContainerReading.model_validate(line["containers"][0])
    assert line["plate"] is None

"""Joining boxes into numbers (pure), and unstacking vertical columns."""

from typing import Any

import cv2
import numpy as np

from devices.ocr import iso6346
from devices.ocr.containers import (
    Token,
    check_digit_token,
    joined_candidates,
    merge_digit_runs,
    single_token_candidates,
)
from devices.ocr.engine import TextBox
from devices.ocr.vertical import split_rows, unstack


def _box(x0: float, y0: float, x1: float, y1: float) -> TextBox:
    return TextBox(np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float32))


def test_owner_serial_and_check_digit_apart_on_one_line():
    tokens = [
        Token("CSQU", 0.98, _box(0, 0, 120, 40)),
        Token("305438", 0.99, _box(150, 0, 330, 40)),
        Token("3", 0.9, _box(350, 0, 380, 40)),
        Token("22G1", 0.99, _box(150, 80, 270, 120)),
    ]
    (cand,) = joined_candidates(tokens)
    assert (cand.owner, cand.serial, cand.check) == ("CSQU", "305438", None)
    assert cand.how == "owner+serial (line)"
    assert check_digit_token(cand, tokens) == ("3", 0.9)


def test_owner_above_serial_two_lines():
    tokens = [
        Token("MSKU", 0.97, _box(0, 0, 120, 40)),
        Token("9070323", 0.99, _box(0, 50, 200, 90)),
    ]
    (cand,) = joined_candidates(tokens)
    assert (cand.owner, cand.serial, cand.check) == ("MSKU", "907032", "3")
    assert "below" in cand.how


def test_far_apart_boxes_are_not_joined():
    tokens = [
        Token("MSKU", 0.97, _box(0, 0, 120, 40)),
        Token("907032", 0.99, _box(600, 300, 800, 340)),
    ]
    assert joined_candidates(tokens) == []


def test_slanted_line_still_joins():
    def slanted(x0: float, x1: float, drop: float) -> TextBox:
        pts = [[x0, x0 * drop], [x1, x1 * drop], [x1, x1 * drop + 40], [x0, x0 * drop + 40]]
        return TextBox(np.array(pts, dtype=np.float32))

    tokens = [
        Token("CADU", 0.95, slanted(0, 120, 0.3)),
        Token("4006525", 0.99, slanted(140, 360, 0.3)),
    ]
    (cand,) = joined_candidates(tokens)
    assert cand.owner + cand.serial + (cand.check or "") == "CADU4006525"


def test_split_serial_digits_are_merged():
    tokens = [
        Token("MOAU", 0.96, _box(0, 0, 120, 40)),
        Token("772", 0.99, _box(0, 50, 90, 90)),
        Token("5126", 0.98, _box(110, 50, 230, 90)),
    ]
    merged = merge_digit_runs(tokens)
    assert [t.text for t in merged] == ["7725126"]
    (cand,) = joined_candidates(tokens + merged)
    assert cand.owner + cand.serial + (cand.check or "") == "MOAU7725126"


def test_one_box_windows_and_coercion():
    tokens = [Token("TEMU-O52462O", 0.95, _box(0, 0, 400, 40))]
    cands = single_token_candidates(tokens)
    assert any(c.owner + c.serial + (c.check or "") == "TEMU0524620" for c in cands)


def _column(text: str) -> Any:
    img = np.full((70 * len(text) + 40, 90, 3), (40, 60, 120), np.uint8)
    for i, ch in enumerate(text):
        cv2.putText(img, ch, (20, 80 + 70 * i), cv2.FONT_HERSHEY_DUPLEX, 2.0, (240, 240, 240), 3)
    return img


def test_split_rows_finds_each_stacked_character():
    assert len(split_rows(_column("TEMU5037029"))) == 11


def test_unstacked_column_reads_as_a_line(reader):
    line = unstack(_column("TEMU5037029"))
    assert line is not None
    assert line.shape[1] > 5 * line.shape[0]
    ((text, score),) = reader.engine.recognise([line])
    assert iso6346.normalise(text) == "TEMU5037029"
    assert score > 0.6


def test_vertical_number_in_a_frame_is_read(reader):
    frame = np.full((1080, 1920, 3), (40, 60, 120), np.uint8)
    column = _column("TEMU5037029")
    frame[100 : 100 + column.shape[0], 900:990] = column
    reading = reader.read(frame)
    assert reading.containers
    assert reading.containers[0].number == "TEMU5037029"

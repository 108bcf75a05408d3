"""Focus measure and frame selection."""

from typing import Any

import cv2
import numpy as np

from devices.camera import Frame, select_sharpest, sharpness


def _pattern(seed: int = 0) -> Any:
    rng = np.random.default_rng(seed)
    img = np.full((480, 640, 3), 90, np.uint8)
    for _ in range(40):
        x, y = int(rng.integers(0, 600)), int(rng.integers(0, 440))
        cv2.putText(img, "CSQU", (x, y), cv2.FONT_HERSHEY_SIMPLEX, 1.2, (250, 250, 250), 2)
    return img


def test_blur_lowers_sharpness():
    sharp = _pattern()
    assert sharpness(sharp) > 3 * sharpness(cv2.GaussianBlur(sharp, (0, 0), 3))
    assert sharpness(np.full((100, 100), 128, np.uint8)) == 0.0


def test_select_sharpest_keeps_capture_order():
    base = _pattern()
    sigmas = [4, 0, 6, 1, 3]
    frames = [
        Frame(cv2.GaussianBlur(base, (0, 0), s) if s else base, ts=float(i), index=i)
        for i, s in enumerate(sigmas)
    ]
    chosen = select_sharpest(frames, 2)
    assert [f.index for f in chosen] == [1, 3]
    assert select_sharpest(frames, 0) == []
    assert len(select_sharpest(frames, 10)) == 5

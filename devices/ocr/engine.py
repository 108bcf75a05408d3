"""The OCR engine: rapidocr-onnxruntime's PP-OCRv4 detector and recogniser, one per process.

The models ship inside the rapidocr wheel; nothing is downloaded. We call the
detector and the recogniser separately so that we choose how each text box is
cropped and turned (vertical container numbers are stacked upright letters, which
the stock pipeline would read sideways).
"""

from __future__ import annotations

import functools
import logging
import os
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

logger = logging.getLogger(__name__)

#: A BGR (or grey) 8-bit image as OpenCV returns it.
Image = npt.NDArray[Any]

#: Longest side (px) of the frame the text detector sees by default.
DETECT_SIDE = int(os.environ.get("BONDWATCH_OCR_DETECT_SIDE", "1440"))


@dataclass(frozen=True)
class TextBox:
    """A detected text region: its four corners (clockwise from top left) in image pixels."""

    points: npt.NDArray[np.float32]

    @property
    def width(self) -> float:
        p = self.points
        return float(max(np.linalg.norm(p[0] - p[1]), np.linalg.norm(p[2] - p[3])))

    @property
    def height(self) -> float:
        p = self.points
        return float(max(np.linalg.norm(p[0] - p[3]), np.linalg.norm(p[1] - p[2])))

    @property
    def center(self) -> tuple[float, float]:
        c = self.points.mean(axis=0)
        return float(c[0]), float(c[1])

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """x0, y0, x1, y1 of the axis-aligned bounding rectangle."""
        xs, ys = self.points[:, 0], self.points[:, 1]
        return float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max())


def upright_corners(points: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """Corners ordered top-left, top-right, bottom-right, bottom-left in image terms.

    The detector may start a tall box at another corner, which would crop a
    vertical column sideways.
    """
    sums = points.sum(axis=1)
    diffs = points[:, 1] - points[:, 0]
    ordered = np.array(
        [
            points[np.argmin(sums)],
            points[np.argmin(diffs)],
            points[np.argmax(sums)],
            points[np.argmax(diffs)],
        ],
        dtype=np.float32,
    )
    if len({tuple(p) for p in ordered.tolist()}) < 4:
        return points
    return ordered


class OcrEngine:
    """Thin wrapper of rapidocr's detector and recogniser."""

    def __init__(self) -> None:
        from rapidocr_onnxruntime import RapidOCR  # imported late: heavy, gate-only dependency

        threads = int(os.environ.get("BONDWATCH_OCR_THREADS", "-1"))
        # rapidocr's "max" limit type ignores det_limit_side_len and detects at up to
        # 2000 px a side; `detect` scales the frame itself instead (see there).
        self._ocr: Any = RapidOCR(
            intra_op_num_threads=threads,
            inter_op_num_threads=1 if threads == -1 else threads,
            det_limit_type="max",
        )

    def detect(self, image: Image, max_side: int = DETECT_SIDE) -> list[TextBox]:
        """Text boxes in `image` (BGR), in its pixels.

        Detection runs on the frame scaled to at most `max_side` px a side (most of
        the detector's time is proportional to the pixels; gate text is large) and the
        boxes are scaled back, so crops are still cut from the full-resolution frame.
        """
        scale = 1.0
        work = image
        if max(image.shape[:2]) > max_side:
            scale = max_side / max(image.shape[:2])
            work = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        boxes, _elapsed = self._ocr.text_det(work)
        if boxes is None or len(boxes) == 0:
            return []
        return [
            TextBox(upright_corners(np.asarray(b, dtype=np.float32) / np.float32(scale)))
            for b in boxes
        ]

    def recognise(self, crops: list[Image]) -> list[tuple[str, float]]:
        """Text and score (0–1) of each line image."""
        if not crops:
            return []
        results, _elapsed = self._ocr.text_rec(crops)
        return [(str(text), float(score)) for text, score, *_ in results]


@functools.cache
def shared_engine() -> OcrEngine:
    """The process's engine (loading the models takes about a second)."""
    logger.info("loading rapidocr PP-OCRv4 models")
    return OcrEngine()


def crop_box(image: Image, box: TextBox, pad: float = 0.0) -> Image:
    """The box cut out and straightened, optionally grown by `pad` × its height."""
    pts = box.points.astype(np.float32).copy()
    if pad:
        center = pts.mean(axis=0)
        grow = pad * min(box.width, box.height)
        direction = pts - center
        norm = np.linalg.norm(direction, axis=1, keepdims=True)
        norm[norm == 0] = 1.0
        pts = pts + direction / norm * grow
    width = max(
        2, round(float(max(np.linalg.norm(pts[0] - pts[1]), np.linalg.norm(pts[2] - pts[3]))))
    )
    height = max(
        2, round(float(max(np.linalg.norm(pts[0] - pts[3]), np.linalg.norm(pts[1] - pts[2]))))
    )
    target = np.array([[0, 0], [width, 0], [width, height], [0, height]], dtype=np.float32)
    matrix = cv2.getPerspectiveTransform(pts, target)
    out: Image = cv2.warpPerspective(
        image, matrix, (width, height), borderMode=cv2.BORDER_REPLICATE, flags=cv2.INTER_CUBIC
    )
    return out

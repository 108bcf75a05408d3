"""The OCR engine: the PP-OCRv4 text detector and recogniser, one engine per process.

The models ship inside the rapidocr-onnxruntime wheel; nothing is downloaded. We run
them on onnxruntime sessions of our own (options rapidocr does not let us set) and
call the detector and the recogniser separately, so that we choose how each text box
is cropped and turned (vertical container numbers are stacked upright letters, which
the stock pipeline would read sideways). rapidocr's angle classifier is not used.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

logger = logging.getLogger(__name__)

#: A BGR (or grey) 8-bit image as OpenCV returns it.
Image = npt.NDArray[Any]

#: Longest side (px) of the frame the text detector sees by default.
DETECT_SIDE = int(os.environ.get("BONDWATCH_OCR_DETECT_SIDE", "1152"))


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


#: Detector post-processing (DB), as PaddleOCR and rapidocr configure it for PP-OCRv4.
_DB = {
    "thresh": 0.3,
    "box_thresh": 0.5,
    "max_candidates": 1000,
    "unclip_ratio": 1.6,
    "use_dilation": True,
    "score_mode": "fast",
}
#: The detector wants sides that are multiples of 32 and sees at most 2000 px a side.
_DET_STRIDE = 32
_DET_MAX = 2000
#: The recogniser reads lines scaled to 48 px high, at least 320 px wide (shorter lines
#: are padded: PP-OCRv4's recogniser is trained on 48 × 320 inputs).
REC_HEIGHT = 48
REC_MIN_WIDTH = 320


def _models_dir() -> Path:
    """The model folder inside the rapidocr-onnxruntime wheel (found without importing it)."""
    spec = importlib.util.find_spec("rapidocr_onnxruntime")
    if spec is None or spec.origin is None:
        raise RuntimeError(
            "rapidocr-onnxruntime is not installed (its models are needed; see the README, "
            "installing a gate controller)"
        )
    return Path(spec.origin).parent / "models"


def session_options(threads: int) -> Any:
    """onnxruntime options for both models.

    rapidocr turns the CPU memory arena off, so every run allocates (and the kernel
    zeroes) its activation buffers afresh; with the arena on (and onnxruntime's memory
    pattern, on by default, planning one block per input shape), detection of a
    1440 px frame takes about a third less CPU time. The price: the process keeps its
    largest buffers, about 0.45 GB more resident after a full-resolution detection.
    """
    import onnxruntime as ort  # type: ignore[import-untyped]  # no type hints shipped

    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.enable_cpu_mem_arena = True
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    if threads > 0:
        options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return options


class OcrEngine:
    """PP-OCRv4 text detector and recogniser on onnxruntime sessions of our own.

    The models are the ones shipped in the rapidocr-onnxruntime wheel (nothing is
    downloaded); its DB post-processing turns the detector's map into boxes. The
    text-angle classifier is not loaded: the reader orients every crop itself.
    """

    def __init__(self, threads: int | None = None) -> None:
        import onnxruntime as ort

        # imported late: heavy, gate-only dependency
        from rapidocr_onnxruntime.ch_ppocr_det.utils import DBPostProcess

        if threads is None:
            threads = int(os.environ.get("BONDWATCH_OCR_THREADS", "-1"))
        models = _models_dir()
        options = session_options(threads)
        providers = ["CPUExecutionProvider"]
        self._det = ort.InferenceSession(
            str(models / "ch_PP-OCRv4_det_infer.onnx"), options, providers=providers
        )
        self._rec = ort.InferenceSession(
            str(models / "ch_PP-OCRv4_rec_infer.onnx"), options, providers=providers
        )
        self._det_input = self._det.get_inputs()[0].name
        self._rec_input = self._rec.get_inputs()[0].name
        self._db = DBPostProcess(**_DB)
        # CTC classes: blank, the model's characters (stored in its metadata), space.
        meta = self._rec.get_modelmeta().custom_metadata_map
        self._chars = ["", *meta["character"].splitlines(), " "]

    # -- detection ---------------------------------------------------------------------

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
        height, width = work.shape[:2]
        ratio = min(1.0, _DET_MAX / max(height, width))
        det_h = max(_DET_STRIDE, round(int(height * ratio) / _DET_STRIDE) * _DET_STRIDE)
        det_w = max(_DET_STRIDE, round(int(width * ratio) / _DET_STRIDE) * _DET_STRIDE)
        if (det_h, det_w) != (height, width):
            work = cv2.resize(work, (det_w, det_h))
        # (pixel / 255 - 0.5) / 0.5, channels first, in float32 throughout.
        # blobFromImage subtracts the mean, then scales: (pixel - 127.5) / 127.5.
        blob = cv2.dnn.blobFromImage(work, scalefactor=1.0 / 127.5, mean=(127.5, 127.5, 127.5))
        prob = self._det.run(None, {self._det_input: blob})[0]
        boxes, _scores = self._db(prob, (height, width))
        out: list[TextBox] = []
        for box in boxes:
            pts = _clockwise(np.asarray(box, dtype=np.float32))
            pts[:, 0] = np.clip(pts[:, 0], 0, width - 1).astype(np.int32)
            pts[:, 1] = np.clip(pts[:, 1], 0, height - 1).astype(np.int32)
            if np.linalg.norm(pts[0] - pts[1]) < 4 or np.linalg.norm(pts[0] - pts[3]) < 4:
                continue
            out.append(TextBox(upright_corners(pts / np.float32(scale))))
        return out

    # -- recognition -------------------------------------------------------------------

    def recognise(self, crops: list[Image]) -> list[tuple[str, float]]:
        """Text and score (0–1) of each line image."""
        return [self._recognise_one(crop) for crop in crops]

    def _recognise_one(self, crop: Image) -> tuple[str, float]:
        """One line, on its own (a batch pads every line to the widest one's width)."""
        height, width = crop.shape[:2]
        ratio = width / height
        padded_w = int(REC_HEIGHT * max(REC_MIN_WIDTH / REC_HEIGHT, ratio))
        scaled_w = max(1, min(padded_w, math.ceil(REC_HEIGHT * ratio)))
        line = cv2.resize(crop, (scaled_w, REC_HEIGHT))
        if line.ndim == 2:
            line = cv2.cvtColor(line, cv2.COLOR_GRAY2BGR)
        blob = np.zeros((1, 3, REC_HEIGHT, padded_w), dtype=np.float32)
        blob[0, :, :, :scaled_w] = line.transpose(2, 0, 1).astype(np.float32) / 127.5 - 1.0
        prob = self._rec.run(None, {self._rec_input: blob})[0][0]
        return self._decode(prob)

    def _decode(self, prob: npt.NDArray[np.float32]) -> tuple[str, float]:
        """Greedy CTC: the best class per step, repeats merged, blanks dropped."""
        best = prob.argmax(axis=1)
        keep = np.ones(len(best), dtype=bool)
        keep[1:] = best[1:] != best[:-1]
        keep &= best != 0
        if not keep.any():
            return "", 0.0
        text = "".join(self._chars[i] for i in best[keep])
        return text, float(prob.max(axis=1)[keep].astype(np.float64).mean())


def _clockwise(points: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """Corners top-left, top-right, bottom-right, bottom-left: the two leftmost by y, …"""
    by_x = points[np.argsort(points[:, 0], kind="stable")]
    left = by_x[:2][np.argsort(by_x[:2, 1], kind="stable")]
    right = by_x[2:][np.argsort(by_x[2:, 1], kind="stable")]
    return np.array([left[0], right[0], right[1], left[1]], dtype=np.float32)


@functools.cache
def shared_engine() -> OcrEngine:
    """The process's engine (loading the models takes about a second)."""
    logger.info("loading PP-OCRv4 detector and recogniser")
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

"""Focus measure: the variance of the Laplacian (Pech-Pacheco et al., 2000), higher is sharper."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import cv2
import numpy.typing as npt

if TYPE_CHECKING:
    from devices.camera.capture import Frame


def sharpness(image: npt.NDArray[Any]) -> float:
    """Variance of the Laplacian of the grey image, measured at a fixed width of 640 px."""
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
    height, width = gray.shape[:2]
    if width > 640:  # a frame far wider than high keeps one row at least
        size = (640, max(1, round(height * 640 / width)))
        gray = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
    return float(cv2.Laplacian(gray, cv2.CV_64F).var())


def select_sharpest(frames: Sequence[Frame], k: int) -> list[Frame]:
    """The `k` sharpest frames, in capture order."""
    if k <= 0:
        return []
    ranked = sorted(frames, key=lambda f: f.sharpness, reverse=True)[:k]
    return sorted(ranked, key=lambda f: f.index)

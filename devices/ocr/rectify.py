"""A door seen obliquely, warped back to a face-on view of its text.

A door turned away from the camera shows its text in perspective: the far end of a
line smaller than its near end, the line's top and bottom converging. Rotated boxes
cannot straighten that, and the far characters (often the boxed check digit) read
poorly. From one line of text we recover the plane's perspective:

- the line's **top and bottom** are fitted to the ink itself: the tops and bottoms of its
  characters (container numbers are capitals and digits of one height), robustly, and
  without the frame round a check digit, which is taller than the characters;
- its **ends** are taken as image verticals: gate cameras are mounted level, and a
  door's vertical edges and corrugation stay vertical in the image when the door is
  turned about its vertical axis (the oblique view from a lane beside it);
- the four corners are the image of a rectangle on the door, mapped to a rectangle by
  a homography. Its true width/height ratio would need the camera's focal length
  (unknown at a gate); instead the near end of the line keeps the look it has in the
  frame and the rest is brought to its scale: the far characters grow to the near
  ones' size, the foreshortening of the near end (the cosine of the door's angle)
  stays, and the recogniser reads narrow characters well.

`rectify(image, box)` returns the face-on view around the line (margins for the owner
code above and the size/type code below) and the homography that made it, or None when
the line shows no perspective worth undoing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from devices.ocr.engine import Image, TextBox

#: The near end of a line at least this many times taller than its far end: perspective.
MIN_CONVERGENCE = 1.12
#: Beyond this the fit is not a line of text seen in perspective.
MAX_CONVERGENCE = 3.0
#: Around the line in the face-on view, in character heights: left/right, above, below.
MARGIN = (4.0, 3.0, 4.0)
#: Character height (px) of the face-on view: small text is scaled up to it.
MIN_CHAR_PX = 56
#: Longest side (px) of the face-on view.
MAX_SIDE = 2048


@dataclass(frozen=True)
class Rectified:
    """The face-on view and the homography from the frame's pixels to it."""

    image: Image
    matrix: npt.NDArray[np.float64]
    convergence: float

    def to_frame(self, box: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
        """A rectangle of the face-on view as the rectangle around it in the frame."""
        x0, y0, x1, y1 = box
        corners = np.array([[[x0, y0], [x1, y0], [x1, y1], [x0, y1]]], dtype=np.float64)
        back = cv2.perspectiveTransform(corners, np.linalg.inv(self.matrix))[0]
        return (
            float(back[:, 0].min()),
            float(back[:, 1].min()),
            float(back[:, 0].max()),
            float(back[:, 1].max()),
        )


def ink_edges(image: Image, box: TextBox) -> tuple[npt.NDArray[np.float64], ...] | None:
    """The line's top and bottom as (slope, intercept) of y on x, fitted to its ink, or None."""
    x0, y0, x1, y1 = box.bounds
    h, w = image.shape[:2]
    pad = 0.25 * (y1 - y0)
    ax0, ax1 = max(0, int(x0)), min(w, int(np.ceil(x1)))
    ay0, ay1 = max(0, int(y0 - pad)), min(h, int(np.ceil(y1 + pad)))
    if ax1 - ax0 < 16 or ay1 - ay0 < 8:
        return None
    region = image[ay0:ay1, ax0:ax1]
    grey = cv2.cvtColor(region, cv2.COLOR_BGR2GRAY) if region.ndim == 3 else region
    # Strokes, not paint: a top-hat as wide as a character keeps what is thinner than
    # it (the strokes) and drops glare, shading and the paint's bands' slow changes.
    # Light text on dark paint or dark on light: of the two, the strokes are the
    # sparser (the other polarity fills the spaces between them).
    size = max(3, int(0.8 * min(box.width, box.height)) | 1)
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (size, size))
    inside = np.zeros(grey.shape, dtype=np.uint8)
    grown = _grown(box.points.astype(np.float64), 0.1 * min(box.width, box.height))
    cv2.fillPoly(inside, [np.round(grown - (ax0, ay0)).astype(np.int32)], 1)
    masks = []
    for op in (cv2.MORPH_TOPHAT, cv2.MORPH_BLACKHAT):
        strokes = cv2.morphologyEx(grey, op, kernel)
        _, binary = cv2.threshold(strokes, 0, 1, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
        # Only inside the detector's box (grown a little): strokes above and below
        # (the size/type code, a door bar) must not pull the envelope.
        masks.append(np.asarray(binary, dtype=bool) & inside.astype(bool))
    ink = min(masks, key=lambda m: int(m.sum()))
    return _edges_of_characters(ink, (ax0, ay0))


def _edges_of_characters(
    ink: npt.NDArray[np.bool_], origin: tuple[int, int]
) -> tuple[npt.NDArray[np.float64], ...] | None:
    """Top and bottom lines through the characters' tops and bottoms.

    Each connected piece of ink of a character's size is a character: its top and
    bottom at its centre are points of the line's two edges. A frame round the check
    digit (a piece holding another piece's centre) and specks are left out.
    """
    count, _, stats, centres = cv2.connectedComponentsWithStats(
        ink.astype(np.uint8), connectivity=8
    )
    if count < 4:
        return None
    x, y, w, h, area = (stats[1:, i].astype(np.float64) for i in range(5))
    tall = h >= 0.3 * float(h.max())
    pieces = np.flatnonzero(tall & (area >= 12))
    keep = []
    for i in pieces:
        inner = (
            (centres[1:, 0] > x[i])
            & (centres[1:, 0] < x[i] + w[i])
            & (centres[1:, 1] > y[i])
            & (centres[1:, 1] < y[i] + h[i])
        )
        inner[i] = False
        if not inner[pieces].any():
            keep.append(i)
    if len(keep) < 4:
        return None
    sel = np.array(keep)
    xs = x[sel] + w[sel] / 2 + origin[0]
    fits = []
    for ys in (y[sel] + origin[1], y[sel] + h[sel] + origin[1]):
        fit = _robust_line(xs, ys)
        if fit is None:
            return None
        fits.append(fit)
    return tuple(fits)


def _grown(points: npt.NDArray[np.float64], by: float) -> npt.NDArray[np.float64]:
    """A convex quadrilateral's corners moved `by` px away from its centre."""
    centre = points.mean(axis=0)
    away = points - centre
    norm = np.linalg.norm(away, axis=1, keepdims=True)
    norm[norm == 0] = 1.0
    out: npt.NDArray[np.float64] = points + away / norm * by
    return out


def _robust_line(xs: npt.NDArray[np.float64], ys: npt.NDArray[np.float64]) -> Any:
    """y = a x + b: Theil–Sen (the median of the slopes between points: a taller letter
    or a stray piece does not tilt it), then least squares on the points near it."""
    i, j = np.triu_indices(len(xs), k=1)
    dx = xs[j] - xs[i]
    ok = np.abs(dx) > 1.0
    if not ok.any():
        return None
    slope = float(np.median((ys[j] - ys[i])[ok] / dx[ok]))
    intercept = float(np.median(ys - slope * xs))
    resid = np.abs(ys - (slope * xs + intercept))
    keep = resid <= max(1.5, 2.0 * float(np.median(resid)))
    if keep.sum() < 3:
        return np.array([slope, intercept])
    return np.polyfit(xs[keep], ys[keep], 1)


def _near_width(quad: npt.NDArray[np.float64], char: float, near_right: bool) -> float:
    """The face-on width of the line `quad` (tl, tr, br, bl) when its near end keeps the
    look it has in the frame, scaled to `char` px high, and the far end is brought to it."""
    unit = np.array([[0, 0], [1, 0], [1, char], [0, char]], dtype=np.float32)
    matrix = cv2.getPerspectiveTransform(quad.astype(np.float32), unit)
    tl, tr, br, bl = quad
    end = (tr + br) / 2 if near_right else (tl + bl) / 2
    height = float(np.linalg.norm((br - tr) if near_right else (bl - tl)))
    step = -1.0 if near_right else 1.0
    pts = np.array([[end, end + np.array([step, 0.0])]], dtype=np.float64)
    mapped = cv2.perspectiveTransform(pts, matrix.astype(np.float64))[0]
    per_px = abs(float(mapped[1, 0] - mapped[0, 0]))  # face-on width units per frame px
    return (char / height) / per_px if per_px > 0 else 0.0


def rectify(image: Image, box: TextBox) -> Rectified | None:
    """The face-on view around the line in `box`, or None (no perspective, or no fit)."""
    edges = ink_edges(image, box)
    if edges is None:
        return None
    top, bottom = edges
    x0, _, x1, _ = box.bounds
    h_left = np.polyval(bottom, x0) - np.polyval(top, x0)
    h_right = np.polyval(bottom, x1) - np.polyval(top, x1)
    if min(h_left, h_right) < 4:
        return None
    convergence = float(max(h_left, h_right) / min(h_left, h_right))
    if not MIN_CONVERGENCE <= convergence <= MAX_CONVERGENCE:
        return None
    quad = np.array(
        [
            [x0, np.polyval(top, x0)],
            [x1, np.polyval(top, x1)],
            [x1, np.polyval(bottom, x1)],
            [x0, np.polyval(bottom, x0)],
        ],
        dtype=np.float64,
    )
    char = max(float(max(h_left, h_right)), MIN_CHAR_PX)
    width, height = _near_width(quad, char, bool(h_right > h_left)), char
    if not char < width < 60 * char:
        return None
    side, above, below = (m * char for m in MARGIN)
    out_w, out_h = width + 2 * side, height + above + below
    shrink = min(1.0, MAX_SIDE / max(out_w, out_h))
    target = (
        np.array(
            [
                [side, above],
                [side + width, above],
                [side + width, above + height],
                [side, above + height],
            ]
        )
        * shrink
    )
    matrix = cv2.getPerspectiveTransform(quad.astype(np.float32), target.astype(np.float32))
    size = (max(16, round(out_w * shrink)), max(16, round(out_h * shrink)))
    view: Image = cv2.warpPerspective(
        image, matrix, size, flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE
    )
    return Rectified(view, matrix.astype(np.float64), convergence)

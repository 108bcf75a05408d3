"""Boxed check digits: the frame painted around the digit, erased before recognition.

Most container doors print the check digit inside a rectangle right of (or below) the
serial. The recogniser, trained on plain text lines, reads the frame's sides as ``1``,
``I`` or ``[`` and loses the digit. A frame is a piece of ink taller than the
characters of its line (it encloses one with a margin): its sides are thin straight
strokes longer than any stroke of a character, its top and bottom thin straight
strokes above and below the characters' band. They are painted over with the
surrounding paint (inpainting). A digit touching its frame may lose a stroke: the
reader reads the region both as it is and erased, and the check digit decides.
"""

from __future__ import annotations

import cv2
import numpy as np

from devices.ocr.engine import Image

#: A frame's sides are taller than the characters by at least this factor, its top
#: and bottom at least this many characters wide (a digit and two margins) …
FRAME_MIN_HEIGHT = 1.06
FRAME_MIN_WIDTH = 0.85
#: … and its strokes at most this thick (in characters).
FRAME_MAX_STROKE = 0.3


def _ink_mask(gray: Image) -> Image:
    """Ink (255): of the polarity Otsu finds in the minority (text and frames are thin),
    and on both Otsu's side and lighter (or darker) than its neighbourhood: glare or a
    shadow across the line (smooth, so not above its neighbourhood) and the bands of
    corrugated paint (below Otsu's level) do not join a frame to the paint around it."""
    _, binary = cv2.threshold(gray, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    light = (binary > 0).mean() < 0.5
    block = max(3, (min(gray.shape[:2]) // 2) | 1)
    mask: Image = cv2.adaptiveThreshold(
        gray,
        255,
        cv2.ADAPTIVE_THRESH_MEAN_C,
        cv2.THRESH_BINARY if light else cv2.THRESH_BINARY_INV,
        block,
        -12 if light else 12,
    )
    mask &= binary if light else 255 - binary
    return mask


def _open(ink: Image, size: tuple[int, int]) -> Image:
    """Morphological opening with nothing beyond the edges (a cut glyph is no line)."""
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, size)
    out: Image = cv2.morphologyEx(
        ink, cv2.MORPH_OPEN, kernel, borderType=cv2.BORDER_CONSTANT, borderValue=0
    )
    return out


def _thin(lines: Image, limit: float, across: int) -> Image:
    """The pieces of `lines` at most `limit` px thick across them (`across`: the
    statistic measured, width for vertical strokes, height for horizontal ones): a
    glare patch or a band of paint may be long, but it is not thin."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(lines, connectivity=8)
    keep = np.zeros(count, dtype=bool)
    keep[1:] = stats[1:count, across] <= limit
    out: Image = np.where(keep[labels], 255, 0).astype(np.uint8)
    return out


def frame_strokes(region: Image) -> Image | None:
    """Mask of the frame strokes in `region`, a text line (or column) of at least three
    characters; None when it has none.

    Sides: thin straight strokes taller than the characters by `FRAME_MIN_HEIGHT`
    (no stroke of a character is taller than the character). Top and bottom: thin
    straight strokes wider than `FRAME_MIN_WIDTH` characters lying above or below the
    characters' band.
    """
    gray = cv2.cvtColor(region, cv2.COLOR_BGR2GRAY) if region.ndim == 3 else region
    ink = _ink_mask(gray)
    band = _glyph_band(ink)
    if band is None:
        return None
    glyph, top, bottom = band
    thin = max(2.0, FRAME_MAX_STROKE * glyph)
    # Strokes a little off the vertical (or horizontal) are made straight by widening
    # the ink across them by a few pixels first.
    lean = max(3, round(glyph / 12)) | 1
    upright: Image = cv2.dilate(ink, np.ones((1, lean), np.uint8))
    sides = _thin(_open(upright, (1, round(FRAME_MIN_HEIGHT * glyph))), thin, cv2.CC_STAT_WIDTH)
    if not sides.any():
        return None
    level: Image = cv2.dilate(ink, np.ones((lean, 1), np.uint8))
    bars = _thin(_open(level, (round(FRAME_MIN_WIDTH * glyph), 1)), thin, cv2.CC_STAT_HEIGHT)
    margin = round(0.15 * glyph)
    bars[max(0, top + margin) : max(0, bottom - margin)] = 0  # inside the characters' band
    strokes: Image = cv2.bitwise_or(sides, bars)
    return strokes


def _glyph_band(ink: Image) -> tuple[float, int, int] | None:
    """The characters' height and the rows they span; None with fewer than three.

    From the ink's pieces at least a sixth of the region high and not as high as the
    region: the characters are
    the tallest common height among them (the median of those at least half as tall
    as the upper quartile), specks and a frame's pieces the outliers.
    """
    count, _, stats, _ = cv2.connectedComponentsWithStats(ink, connectivity=8)
    pieces = stats[1:count]
    tall = pieces[:, cv2.CC_STAT_HEIGHT]
    # Pieces across the whole region are paint (corrugation bands, edges), not text.
    pieces = pieces[(tall >= max(6.0, ink.shape[0] / 6)) & (tall < 0.9 * ink.shape[0])]
    if len(pieces) < 3:
        return None
    heights = pieces[:, cv2.CC_STAT_HEIGHT].astype(np.float64)
    pieces = pieces[heights >= 0.5 * float(np.percentile(heights, 75))]
    if len(pieces) < 3:
        return None
    tops = pieces[:, cv2.CC_STAT_TOP].astype(np.float64)
    bottoms = tops + pieces[:, cv2.CC_STAT_HEIGHT]
    top, bottom = float(np.median(tops)), float(np.median(bottoms))
    return bottom - top, round(top), round(bottom)


def erase_frames(region: Image) -> Image | None:
    """`region` with the strokes of frames painted over, or None when it has none."""
    strokes = frame_strokes(region)
    if strokes is None:
        return None
    strokes = cv2.dilate(strokes, np.ones((5, 5), np.uint8))
    out: Image = cv2.inpaint(region, strokes, 3, cv2.INPAINT_TELEA)
    return out

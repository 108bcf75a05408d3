"""Vertical numbers the text detector does not see: columns found from the characters.

A number painted down a corner post is a column of single upright characters in thin
strokes; the detector's map may mark it only as faint strips below its box threshold.
This finder works from the characters themselves: small bright (or dark) marks against
the paint around them (a morphological top-hat, or black-hat), of a character's shape,
stacked one under the other at a steady pitch. A column of at least
`MIN_COLUMN_CHARS` such marks becomes a box for the reader's column path
(`vertical.unstack`), which reads it like any detected column.
"""

from __future__ import annotations

import cv2
import numpy as np

from devices.ocr.engine import Image, TextBox

#: Fewest stacked marks that make a column (an owner code and most of a serial).
MIN_COLUMN_CHARS = 8
#: Character heights considered, as a share of the image's longer side.
CHAR_SIZE = (0.01, 0.07)


def _marks(gray: Image, dark: bool) -> list[tuple[int, int, int, int]]:
    """Character-like marks (x, y, w, h) lighter (or darker) than the paint around them."""
    side = max(gray.shape[:2])
    size = max(3, round(CHAR_SIZE[1] * side * 0.5)) | 1
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (size, size))
    hat = cv2.morphologyEx(gray, cv2.MORPH_BLACKHAT if dark else cv2.MORPH_TOPHAT, kernel)
    _, binary = cv2.threshold(hat, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    count, _, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
    lo, hi = CHAR_SIZE[0] * side, CHAR_SIZE[1] * side
    boxes = [tuple(int(v) for v in row[:4]) for row in stats[1:count]]
    marks: list[tuple[int, int, int, int]] = []
    for x, y, w, h in boxes:
        if not (lo <= h <= hi and w >= 2 and 0.7 <= h / w <= 8):
            continue
        if any(
            x < ix and y < iy and ix + iw < x + w and iy + ih < y + h and ih >= 0.15 * h
            for ix, iy, iw, ih in boxes
        ):
            # A frame around a character (a boxed check digit): the character inside.
            inset_x, inset_y = max(1, round(0.12 * w)), max(1, round(0.12 * h))
            x, y, w, h = x + inset_x, y + inset_y, w - 2 * inset_x, h - 2 * inset_y
        marks.append((x, y, w, h))
    return marks


def _stack(marks: list[tuple[int, int, int, int]]) -> list[list[tuple[int, int, int, int]]]:
    """Marks grouped into columns: each under the last, centred on it, a gap apart."""
    columns: list[list[tuple[int, int, int, int]]] = []
    for mark in sorted(marks, key=lambda m: m[1]):
        x, y, w, h = mark
        for column in columns:
            lx, ly, lw, lh = column[-1]
            pitch = max(h, lh)
            if abs((x + w / 2) - (lx + lw / 2)) < 0.6 * pitch and 0 <= y - (ly + lh) < 1.2 * pitch:
                column.append(mark)
                break
        else:
            columns.append([mark])
    return [c for c in columns if len(c) >= MIN_COLUMN_CHARS]


def find_columns(image: Image) -> list[tuple[TextBox, Image]]:
    """Columns of stacked characters, light on dark or dark on light: each one's box and
    its characters cut out one by one and laid side by side as a line."""
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
    found: list[tuple[TextBox, Image]] = []
    for dark in (False, True):
        for column in _stack(_marks(gray, dark)):
            heights = float(np.median([m[3] for m in column]))
            widths = float(np.median([m[2] for m in column]))
            # Marks much wider than the column's characters are not its characters
            # (a label or a sign below the number).
            chars = [m for m in column if m[2] <= 2.0 * max(widths, 0.5 * heights)]
            if len(chars) < MIN_COLUMN_CHARS:
                continue
            x0 = min(m[0] for m in chars)
            x1 = max(m[0] + m[2] for m in chars)
            y0 = min(m[1] for m in chars)
            y1 = max(m[1] + m[3] for m in chars)
            box = TextBox(np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float32))
            found.append((box, _line(image, chars, heights)))
    return found


def _line(image: Image, chars: list[tuple[int, int, int, int]], height: float) -> Image:
    """The characters cut out (a little margin each) and laid side by side, centred on
    a strip of the paint's median colour."""
    pad = max(2, round(0.2 * height))
    tallest = max(h for _, _, _, h in chars)
    strip_h = tallest + 2 * pad
    pieces: list[Image] = []
    img_h, img_w = image.shape[:2]
    for x, y, w, h in chars:
        piece = image[max(0, y - 1) : min(img_h, y + h + 1), max(0, x - 1) : min(img_w, x + w + 1)]
        background = np.median(piece.reshape(-1, piece.shape[-1]), axis=0).astype(np.uint8)
        cell = np.empty((strip_h, piece.shape[1] + 2 * pad, *image.shape[2:]), np.uint8)
        cell[...] = background
        top = (strip_h - piece.shape[0]) // 2
        cell[top : top + piece.shape[0], pad : pad + piece.shape[1]] = piece
        pieces.append(cell)
    line: Image = np.concatenate(pieces, axis=1)
    return line

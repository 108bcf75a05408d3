"""Vertical container numbers: upright letters stacked in a column, turned into one line.

A line recogniser reads left to right. A column of upright characters (the way
numbers are painted on door posts: T/E/M/U/5/0/…) is cut into characters along
the empty rows between them and the characters are laid side by side.
"""

from __future__ import annotations

import cv2
import numpy as np

from devices.ocr.engine import Image


def _text_mask(gray: Image) -> Image:
    """Binary mask (255 = ink) by Otsu.

    The polarity (light on dark or dark on light) is the one whose rows have gaps:
    in a column of characters the rows between them are empty of ink, while the
    background has no such gaps. Ties go to the border rule: paint fills the edges.
    """
    _, binary = cv2.threshold(gray, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    inverse = 255 - binary
    width = gray.shape[1]
    margin = max(1, width // 10)

    def gaps(mask: Image) -> int:
        return int(((mask[:, margin : width - margin] > 0).mean(axis=1) < 0.04).sum())

    border = np.concatenate([binary[0, :], binary[-1, :], binary[:, 0], binary[:, -1]])
    if gaps(inverse) > gaps(binary) or (gaps(inverse) == gaps(binary) and border.mean() > 127):
        binary = inverse
    mask: Image = binary
    return mask


def split_rows(column: Image) -> list[tuple[int, int]]:
    """Row ranges (start, end) of the characters in a column image."""
    gray = cv2.cvtColor(column, cv2.COLOR_BGR2GRAY) if column.ndim == 3 else column
    height, width = gray.shape
    mask = _text_mask(gray)
    # Ignore the outer columns where box edges and door bars live.
    margin = max(1, width // 10)
    ink = (mask[:, margin : width - margin] > 0).mean(axis=1)
    filled = ink > 0.04
    runs: list[tuple[int, int]] = []
    start: int | None = None
    for y, on in enumerate(filled):
        if on and start is None:
            start = y
        elif not on and start is not None:
            runs.append((start, y))
            start = None
    if start is not None:
        runs.append((start, height))
    min_height = max(2, width // 6)
    runs = [(a, b) for a, b in runs if b - a >= min_height]
    # A run much taller than the column is wide holds several touching characters:
    # cut it evenly by the typical character height.
    if not runs:
        return []
    typical = float(np.median([b - a for a, b in runs]))
    typical = max(typical, width * 0.6)
    out: list[tuple[int, int]] = []
    for a, b in runs:
        pieces = max(1, round((b - a) / typical))
        if pieces > 1 and (b - a) > 1.6 * typical:
            step = (b - a) / pieces
            out.extend((round(a + i * step), round(a + (i + 1) * step)) for i in range(pieces))
        else:
            out.append((a, b))
    return out


def unstack(column: Image, min_chars: int = 3) -> Image | None:
    """The characters of a column image laid out as one line, or None if it has too few."""
    rows = split_rows(column)
    if len(rows) < min_chars:
        return None
    height = max(b - a for a, b in rows)
    pad = max(2, height // 4)
    width = column.shape[1]
    pieces: list[Image] = []
    background = np.median(
        column.reshape(-1, column.shape[2]) if column.ndim == 3 else column, axis=0
    )
    for a, b in rows:
        char = column[max(0, a - 1) : b + 1]
        canvas = np.empty((height + 2 * pad, width + pad, *column.shape[2:]), dtype=np.uint8)
        canvas[...] = background.astype(np.uint8)
        top = pad + (height - char.shape[0]) // 2
        canvas[top : top + char.shape[0], pad // 2 : pad // 2 + width] = char
        pieces.append(canvas)
    line: Image = np.concatenate(pieces, axis=1)
    return line

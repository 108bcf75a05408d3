"""A passage's evidence: each frame read and a crop of each text read in it (pure helpers).

`texts_of(reading, shape)` turns what the reader found in one frame into the contract's
`TextBox` list (box, text, confidence); `crop_around(box, shape)` is the part of the frame
cut out for a crop, with the text's box in the crop's own pixels.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from contract.evidence import TEXTS_PER_IMAGE, ImageMeta, TextBox
from devices.ocr import ImageReading
from devices.ocr.results import Box

log = logging.getLogger(__name__)

#: Margin kept around a text in its crop, in text heights.
CROP_MARGIN = 0.3


@dataclass(frozen=True, slots=True)
class EvidenceImage:
    """One saved JPEG to upload as image `n` of its passage."""

    n: int
    path: Path
    meta: ImageMeta


def _clipped(box: Box, shape: tuple[int, ...]) -> Box | None:
    height, width = shape[:2]
    x0, y0, x1, y1 = box
    x0, y0 = max(0.0, round(x0, 1)), max(0.0, round(y0, 1))
    x1, y1 = min(float(width), round(x1, 1)), min(float(height), round(y1, 1))
    return (x0, y0, x1, y1) if x1 > x0 and y1 > y0 else None


def _text_box(kind: str, text: str, confidence: float, review: bool, box: Box) -> TextBox | None:
    """The contract's `TextBox`, or None (logged) for a reading it cannot carry: the
    evidence must never cost the passage its reading."""
    try:
        return TextBox.model_validate(
            {
                "kind": kind,
                "text": text[:32],
                "confidence": round(min(1.0, max(0.0, confidence)), 3),
                "needs_review": review,
                "box": box,
            }
        )
    except ValidationError as err:
        log.warning("reading %r left off its image's boxes: %s", text, err)
        return None


def texts_of(reading: ImageReading | None, shape: tuple[int, ...]) -> list[TextBox]:
    """The readings of one frame that know where they are, plate last, at most
    `TEXTS_PER_IMAGE`."""
    if reading is None:
        return []
    found: list[TextBox | None] = []
    for c in reading.containers:
        if c.box is not None and (box := _clipped(c.box, shape)) is not None:
            found.append(_text_box("container", c.number, c.confidence, c.needs_review, box))
    plate = reading.plate
    if plate is not None and plate.box is not None and (box := _clipped(plate.box, shape)):
        found.append(_text_box("plate", plate.text, plate.confidence, plate.needs_review, box))
    return [t for t in found if t is not None][:TEXTS_PER_IMAGE]


def crop_around(box: Box, shape: tuple[int, ...]) -> tuple[tuple[int, int, int, int], Box]:
    """The integer rectangle (x0, y0, x1, y1) of the frame to cut for a text, and the
    text's box inside that crop."""
    height, width = shape[:2]
    x0, y0, x1, y1 = box
    margin = CROP_MARGIN * min(x1 - x0, y1 - y0)
    cx0, cy0 = max(0, int(x0 - margin)), max(0, int(y0 - margin))
    cx1, cy1 = min(width, int(x1 + margin + 1)), min(height, int(y1 + margin + 1))
    inner = (x0 - cx0, y0 - cy0, min(x1, cx1) - cx0, min(y1, cy1) - cy0)
    return (cx0, cy0, cx1, cy1), inner

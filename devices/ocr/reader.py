"""The gate reader: container numbers (ISO 6346) and the licence plate from camera images.

`GateReader.read(image)` finds text boxes with rapidocr's detector, cuts each out
(turning stacked vertical columns into lines), recognises them in one batch, then
assembles, corrects and checks container numbers (`containers.py`, `iso6346.py`)
and validates plates (`plates.py`). `fuse(readings)` merges the images of one passage.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import replace
from typing import Literal

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from devices.errors import DeviceError
from devices.ocr import iso6346
from devices.ocr.containers import (
    Candidate,
    Token,
    check_digit_token,
    joined_candidates,
    merge_digit_runs,
    single_token_candidates,
)
from devices.ocr.engine import DETECT_SIDE, Image, OcrEngine, TextBox, crop_box, shared_engine
from devices.ocr.plates import find_plate
from devices.ocr.results import (
    DEFAULT_REVIEW_THRESHOLD,
    ContainerResult,
    ImageReading,
    PassageReading,
    PlateResult,
)
from devices.ocr.vertical import unstack

logger = logging.getLogger(__name__)

#: A rectangle in image pixels: x0, y0, x1, y1.
Rect = tuple[int, int, int, int]

MIN_SIDE = 16
MAX_PIXELS = 40_000_000
#: Images larger than this (longest side) are scaled down before detection.
WORK_SIDE = 2048
#: Boxes thinner than this (pixels, at working size) are not recognised.
MIN_TEXT_PX = 10
#: Smaller images are scaled up to this (longest side): small text reads better.
MIN_WORK_SIDE = 960


class ImageError(DeviceError, ValueError):
    """An image that cannot be read: empty, corrupt, too small or too large."""


def check_image(image: object) -> Image:
    """`image` as a BGR uint8 array, or ImageError saying what is wrong with it."""
    if not isinstance(image, np.ndarray):
        raise ImageError(f"expected a numpy image array, got {type(image).__name__}")
    if image.size == 0:
        raise ImageError("empty image")
    if image.dtype != np.uint8:
        raise ImageError(f"expected 8-bit pixels, got {image.dtype}")
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    elif image.ndim == 3 and image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    elif image.ndim != 3 or image.shape[2] != 3:
        raise ImageError(f"expected a grey, BGR or BGRA image, got shape {image.shape}")
    height, width = image.shape[:2]
    if min(height, width) < MIN_SIDE:
        raise ImageError(f"image too small: {width}x{height} (need at least {MIN_SIDE} px a side)")
    if height * width > MAX_PIXELS:
        raise ImageError(f"image too large: {width}x{height} (at most {MAX_PIXELS} pixels)")
    checked: Image = np.ascontiguousarray(image)
    return checked


def decode_image(data: bytes) -> Image:
    """Decode JPEG/PNG/… bytes, or ImageError."""
    if not data:
        raise ImageError("empty image file")
    array = np.frombuffer(data, dtype=np.uint8)
    image = cv2.imdecode(array, cv2.IMREAD_COLOR)
    if image is None:
        raise ImageError("not a decodable image (corrupt or unknown format)")
    return check_image(image)


def load_image(path: str) -> Image:
    """Read an image file, or ImageError (OSError for a missing file)."""
    with open(path, "rb") as fh:
        return decode_image(fh.read())


class ReaderConfig(BaseModel):
    """Configuration of the gate reader (OCR driver `rapidocr`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["rapidocr"] = Field(default="rapidocr", description="OCR driver")
    review_threshold: float = Field(
        default=DEFAULT_REVIEW_THRESHOLD,
        ge=0.0,
        le=1.0,
        description="readings with a lower confidence are reported with needs_review",
    )
    read_plates: bool = Field(default=True, description="also look for a Chinese licence plate")
    max_containers: int = Field(default=4, ge=1, le=8, description="most numbers kept per image")
    detect_side: int = Field(
        default=DETECT_SIDE,
        ge=320,
        le=4096,
        description="longest side (px) of the frame the text detector sees; boxes are "
        "scaled back and cut from the full frame",
    )
    first_boxes: int = Field(
        default=8,
        ge=1,
        le=1000,
        description="text boxes recognised first (largest characters first); the others are "
        "read only when these do not give a confident number, its size/type code and the plate",
    )


class GateReader:
    """Reads container numbers and the plate; one engine per process is shared."""

    def __init__(self, config: ReaderConfig | None = None, engine: OcrEngine | None = None) -> None:
        self.config = config or ReaderConfig()
        self._engine = engine

    @property
    def engine(self) -> OcrEngine:
        if self._engine is None:
            self._engine = shared_engine()
        return self._engine

    # -- one image -------------------------------------------------------------------

    def read(self, image: Image) -> ImageReading:
        """Read one image (BGR array). Raises ImageError for an unusable image."""
        started = time.perf_counter()
        image = check_image(image)
        original = image
        scale = 1.0
        if max(image.shape[:2]) > WORK_SIDE:
            scale = WORK_SIDE / max(image.shape[:2])
            image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        elif max(image.shape[:2]) < MIN_WORK_SIDE:
            scale = MIN_WORK_SIDE / max(image.shape[:2])
            image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
        containers, plate = self._pass(image, original, self.config.detect_side)
        if not _confident(containers) and max(image.shape[:2]) > self.config.detect_side:
            # Thin columns and widely spaced digits can be lost when detecting on the
            # scaled frame: a frame without a confident number is looked at again at
            # its own resolution, and the better reading kept.
            fine, fine_plate = self._pass(image, original, max(image.shape[:2]))
            if _rank_key(fine) > _rank_key(containers):
                containers = fine
            plate = plate or fine_plate
        elapsed = (time.perf_counter() - started) * 1000.0
        return ImageReading(containers=containers, plate=plate, elapsed_ms=elapsed)

    def _pass(
        self, image: Image, original: Image, detect_side: int
    ) -> tuple[list[ContainerResult], PlateResult | None]:
        """Detect at `detect_side`, recognise the largest text first, the rest if needed."""
        boxes = [
            b
            for b in self.engine.detect(image, detect_side)
            if min(b.width, b.height) >= MIN_TEXT_PX
        ]
        first, rest = _stages(boxes, self.config.first_boxes)
        looks: dict[Rect, tuple[str, float]] = {}  # check-digit regions read, by place
        tokens = self._tokens(image, first)
        containers = self._containers(image, tokens, looks)
        plate = self._plate(original, tokens) if self.config.read_plates else None
        if rest and not self._settled(containers, plate):
            tokens += self._tokens(image, rest)
            containers = self._containers(image, tokens, looks)
            plate = self._plate(original, tokens) if self.config.read_plates else None
        return containers, plate

    def _settled(self, containers: list[ContainerResult], plate: PlateResult | None) -> bool:
        """True when the boxes read so far answer everything: the rest need not be read.

        A confident number with its check digit seen and valid, its size/type code,
        and the plate when plates are wanted.
        """
        if not _confident(containers) or containers[0].iso_type is None:
            return False
        return plate is not None or not self.config.read_plates

    def _tokens(self, image: Image, boxes: list[TextBox]) -> list[Token]:
        crops: list[Image] = []
        owners: list[tuple[TextBox, bool]] = []
        for box in boxes:
            crop = crop_box(image, box)
            if box.height >= 1.5 * box.width:
                line = unstack(crop_box(image, box, pad=0.1))
                if line is not None:
                    crops.append(line)
                    owners.append((box, True))
                crops.append(np.ascontiguousarray(np.rot90(crop)))
                owners.append((box, False))
            else:
                crops.append(crop)
                owners.append((box, False))
        texts = self.engine.recognise(crops)
        tokens = [
            Token(text, score, box, vertical)
            for (box, vertical), (text, score) in zip(owners, texts, strict=True)
            if text.strip() and score >= 0.3
        ]
        grown = self._grown_columns(image, tokens)
        # A second round: a grown column may still miss a letter at its end.
        again = self._grown_columns(image, [t for t in grown if len(t.norm) < 11])
        return tokens + grown + again

    def _grown_columns(self, image: Image, tokens: list[Token]) -> list[Token]:
        """Vertical numbers the detector cut short (glare, a door bar): read a longer column.

        A column token holding part of a number is extended up and down by the
        missing characters' pitch and read again.
        """
        grown_boxes: list[TextBox] = []
        crops: list[Image] = []
        for tok in tokens:
            text = tok.norm
            if not tok.vertical or not 4 <= len(text) < 11:
                continue
            if sum(ch.isdigit() for ch in text) < 4 and not (len(text) == 4 and text.isalpha()):
                continue
            grown = _grow_column(tok.box, len(text), image.shape[:2])
            line = unstack(crop_box(image, grown))
            if line is None:
                # Paint of another colour beside a label column hides the gaps between
                # characters: try again closer to the column.
                grown = _grow_column(tok.box, len(text), image.shape[:2], side=0.05)
                line = unstack(crop_box(image, grown))
            if line is None:
                continue
            crops.append(line)
            grown_boxes.append(grown)
        texts = self.engine.recognise(crops) if crops else []
        return [
            Token(text, score, box, True)
            for box, (text, score) in zip(grown_boxes, texts, strict=True)
            if text.strip() and score >= 0.3
        ]

    def _containers(
        self, image: Image, tokens: list[Token], looks: dict[Rect, tuple[str, float]]
    ) -> list[ContainerResult]:
        tokens = tokens + merge_digit_runs(tokens)
        candidates = single_token_candidates(tokens) + joined_candidates(tokens)
        # Check digits printed apart: a one-digit box after the serial, else a fresh look.
        completed: list[Candidate] = []
        missing: list[Candidate] = []
        for cand in candidates:
            if cand.check is not None:
                completed.append(cand)
                continue
            found = check_digit_token(cand, tokens)
            if found is not None:
                digit, score = found
                completed.append(
                    replace(
                        cand, check=digit, score=min(cand.score, score), how=cand.how + "+check box"
                    )
                )
            else:
                missing.append(cand)
        completed.extend(self._look_for_check_digits(image, missing, looks))
        results = [self._judge(c) for c in completed]
        return self._rank(results, tokens)

    def _look_for_check_digits(
        self, image: Image, cands: list[Candidate], looks: dict[Rect, tuple[str, float]]
    ) -> list[Candidate]:
        """Look again at the serial and what follows it, where the check digit should be.

        A lone framed digit reads poorly; the serial and the digit together read as
        one line, and the digit after the serial's six is the check digit. `looks`
        holds the regions already read during this image's reading: the same serial
        found by several boxes, or again after the rest of the boxes are read, is
        looked at once.
        """
        rects = [_check_rect(image.shape, cand) for cand in cands]
        todo: dict[Rect, Image] = {}
        for cand, rect in zip(cands, rects, strict=True):
            if rect is not None and rect not in looks and rect not in todo:
                todo[rect] = _check_crop(image, rect, cand.vertical)
        looks.update(zip(todo, self.engine.recognise(list(todo.values())), strict=True))
        out: list[Candidate] = []
        for cand, rect in zip(cands, rects, strict=True):
            if rect is None:
                out.append(cand)
                continue
            text, score = looks[rect]
            digits = "".join(ch for ch in iso6346.normalise(text) if ch.isdigit())
            at = digits.find(cand.serial)
            if (
                at < 0
                and len(digits) == 7
                and sum(a != b for a, b in zip(digits, cand.serial, strict=False)) <= 1
            ):
                at = 0
            if at >= 0 and len(digits) == at + 7 and score >= 0.5:
                check = digits[at + 6]
                out.append(
                    replace(
                        cand,
                        check=check,
                        score=min(cand.score, score),
                        how=cand.how + "+check look",
                    )
                )
            else:
                out.append(cand)
        return out

    def _judge(self, cand: Candidate) -> ContainerResult:
        """Check digit, unique repair or review; confidence as the chance of being right."""
        first_ten = cand.owner + cand.serial
        threshold = self.config.review_threshold
        if cand.check is None:
            number = iso6346.with_check_digit(first_ten)
            confidence = 0.4 * cand.score
            return ContainerResult(
                number,
                confidence,
                False,
                True,
                how=cand.how + " (no check digit)",
                char_height=cand.char_height,
            )
        number = first_ten + cand.check
        if iso6346.is_valid(number):
            confidence = 0.5 + 0.5 * cand.score
            if number[3] not in iso6346.CATEGORIES or cand.noisy:
                # Real but rare (RWWL…); far more often a misread U: an officer looks.
                confidence = min(confidence, threshold - 0.05)
            return ContainerResult(
                number,
                confidence,
                True,
                confidence < threshold,
                how=cand.how,
                char_height=cand.char_height,
            )
        if cand.how.endswith("+check look"):
            # The second look is the weaker evidence: treat its digit as not seen.
            return self._judge(replace(cand, check=None, how=cand.how + " (digit unsure)"))
        fixes = iso6346.repairs(number)
        if len(fixes) == 1:
            confidence = 0.6 * cand.score
            return ContainerResult(
                fixes[0],
                confidence,
                True,
                True,
                how=cand.how + " (repaired)",
                char_height=cand.char_height,
                alternatives=(number,),
            )
        return ContainerResult(
            number,
            0.2 * cand.score,
            False,
            True,
            how=cand.how + " (check digit fails)",
            char_height=cand.char_height,
            alternatives=tuple(fixes),
        )

    def _rank(self, results: list[ContainerResult], tokens: list[Token]) -> list[ContainerResult]:
        best: dict[str, ContainerResult] = {}
        for res in results:
            old = best.get(res.number)
            if old is None or res.confidence > old.confidence:
                best[res.number] = res if old is None else replace(res, agreement=old.agreement + 1)
            else:
                best[res.number] = replace(old, agreement=old.agreement + 1)
        ordered = sorted(
            best.values(),
            key=lambda r: (
                r.check_digit_ok and not r.alternatives,
                r.confidence * (r.char_height**0.5),
            ),
            reverse=True,
        )
        # A number that only differs from a better one by a few glyphs is a misreading of it.
        kept: list[ContainerResult] = []
        for res in ordered:
            if any(
                _similar(res.number, k.number) or _overlapping(res.number, k.number) for k in kept
            ):
                continue
            kept.append(res)
        iso_type = _size_type(tokens)
        if iso_type and kept:
            kept[0] = replace(kept[0], iso_type=iso_type)
        return kept[: self.config.max_containers]

    def _plate(self, image: Image, tokens: list[Token]) -> PlateResult | None:
        found: list[PlateResult] = []
        for tok in tokens:
            hit = find_plate(tok.text)
            if hit is not None:
                text, kind = hit
                found.append(
                    PlateResult(text, tok.score, tok.score < self.config.review_threshold, kind)
                )
        if not found and image.shape[1] <= 480 and 1.5 < image.shape[1] / image.shape[0] < 8:
            # A plate crop: the detector may miss the single line; read the whole image.
            ((text, score),) = self.engine.recognise([image])
            hit = find_plate(text)
            if hit is not None:
                found.append(
                    PlateResult(hit[0], score, score < self.config.review_threshold, hit[1])
                )
        if not found:
            return None
        return max(found, key=lambda p: p.confidence)


def _check_rect(shape: tuple[int, ...], cand: Candidate) -> Rect | None:
    """Where the serial and the check digit after it are: x0, y0, x1, y1 in pixels.

    None when there is no such place: off the image, or a "line" region that is
    not at least twice as wide as high (the serial and its check digit are seven
    characters in a row; a squarer region comes from a box that is not a line of
    text, e.g. a column read sideways).
    """
    x0, y0, x1, y1 = cand.tail.bounds
    char = cand.char_height
    h, w = shape[:2]
    if cand.vertical:
        box = (x0 - 0.3 * char, y0, x1 + 0.3 * char, y1 + 1.7 * char)
    else:
        box = (x0, y0 - 0.3 * char, x1 + 2.2 * char, y1 + 0.3 * char)
    bx0, by0 = max(0, int(box[0])), max(0, int(box[1]))
    bx1, by1 = min(w, int(box[2])), min(h, int(box[3]))
    if bx1 - bx0 < 4 or by1 - by0 < 4:
        return None
    if not cand.vertical and bx1 - bx0 < 2 * (by1 - by0):
        return None
    return bx0, by0, bx1, by1


def _check_crop(image: Image, rect: Rect, vertical: bool) -> Image:
    """The check-digit region as one line (a column's characters laid side by side)."""
    x0, y0, x1, y1 = rect
    region: Image = np.ascontiguousarray(image[y0:y1, x0:x1])
    if vertical:
        line = unstack(region)
        return line if line is not None else region
    return region


def _grow_column(box: TextBox, chars: int, shape: tuple[int, ...], side: float = 0.25) -> TextBox:
    """`box` (a column holding `chars` of 11 characters) grown along its own axis.

    Up and down by the missing characters' pitch, sideways by a quarter of its
    width; measured along the column so that a slanted column stays inside.
    """
    tl, tr, br, bl = box.points.astype(np.float64)
    down = (bl - tl) + (br - tr)
    length = float(np.linalg.norm(down)) / 2.0 or 1.0
    down = down / (2.0 * length)
    across = (tr - tl) + (br - bl)
    width = float(np.linalg.norm(across)) / 2.0 or 1.0
    across = across / (2.0 * width)
    grow = (11 - chars) * length / chars * 1.1
    pad = side * width
    corners = np.array(
        [
            tl - down * grow - across * pad,
            tr - down * grow + across * pad,
            br + down * grow + across * pad,
            bl + down * grow - across * pad,
        ]
    )
    height, wide = shape[0], shape[1]
    corners[:, 0] = corners[:, 0].clip(0, wide - 1)
    corners[:, 1] = corners[:, 1].clip(0, height - 1)
    return TextBox(corners.astype(np.float32))


def _confident(containers: list[ContainerResult]) -> bool:
    """A top number with its check digit seen and valid, above the review threshold."""
    return bool(containers) and containers[0].check_digit_ok and not containers[0].needs_review


def _rank_key(containers: list[ContainerResult]) -> tuple[bool, bool, float]:
    if not containers:
        return (False, False, 0.0)
    top = containers[0]
    return (top.check_digit_ok and not top.needs_review, top.check_digit_ok, top.confidence)


def _char_height(box: TextBox) -> float:
    """Character height of a box: its short side (a column's width, a line's height)."""
    return min(box.width, box.height)


def _stages(boxes: list[TextBox], first: int) -> tuple[list[TextBox], list[TextBox]]:
    """Boxes to recognise first (the `first` with the largest characters) and the rest.

    The container number is painted in the largest characters on a door or side;
    weights, tare and capacity labels are smaller.
    """
    ordered = sorted(boxes, key=_char_height, reverse=True)
    return ordered[:first], ordered[first:]


def _similar(a: str, b: str) -> bool:
    return len(a) == len(b) and sum(x != y for x, y in zip(a, b, strict=True)) <= 2


def _overlapping(a: str, b: str, run: int = 5) -> bool:
    """True when `a` and `b` share `run` consecutive characters of their serials."""
    return any(a[4 + i : 4 + i + run] in b for i in range(0, 7 - run + 1))


def _size_type(tokens: list[Token]) -> str | None:
    counts: dict[str, float] = defaultdict(float)
    for tok in tokens:
        code = iso6346.coerce_size_type(tok.norm)
        if code:
            counts[code] += tok.score * tok.char_height
    if not counts:
        return None
    return max(counts, key=lambda c: counts[c])


def fuse(
    readings: Iterable[ImageReading], review_threshold: float = DEFAULT_REVIEW_THRESHOLD
) -> PassageReading:
    """One passage from several frames or cameras: agreeing readings reinforce each other.

    Numbers are grouped; a number read with a valid check digit by several images
    gains confidence (independent reads agreeing), one contradicted by a
    confident different reading of a similar number is sent to review.
    """
    items = list(readings)
    groups: dict[str, list[ContainerResult]] = defaultdict(list)
    plates: dict[str, list[PlateResult]] = defaultdict(list)
    for reading in items:
        for res in reading.containers:
            groups[res.number].append(res)
        if reading.plate is not None:
            plates[reading.plate.text].append(reading.plate)
    fused: list[ContainerResult] = []
    for group in groups.values():
        top = max(group, key=lambda r: r.confidence)
        miss = 1.0
        for res in group:
            miss *= 1.0 - min(0.99, res.confidence)
        confidence = 1.0 - miss if top.check_digit_ok else top.confidence
        types = [r.iso_type for r in group if r.iso_type]
        iso_type = max(set(types), key=types.count) if types else None
        fused.append(
            replace(
                top,
                confidence=confidence,
                agreement=len(group),
                iso_type=iso_type,
                needs_review=confidence < review_threshold or not top.check_digit_ok,
            )
        )
    fused.sort(key=lambda r: (r.check_digit_ok, r.agreement, r.confidence), reverse=True)
    kept: list[ContainerResult] = []
    for res in fused:
        rival = next((k for k in kept if _similar(res.number, k.number)), None)
        if rival is not None:
            if res.check_digit_ok and res.confidence >= review_threshold:
                # Two valid numbers that look alike: neither is safe without an officer.
                kept[kept.index(rival)] = replace(
                    rival, needs_review=True, alternatives=(*rival.alternatives, res.number)
                )
            continue
        kept.append(res)
    plate: PlateResult | None = None
    if plates:
        votes = max(plates.values(), key=lambda g: (len(g), max(p.confidence for p in g)))
        top_plate = max(votes, key=lambda p: p.confidence)
        plate = replace(top_plate, agreement=len(votes))
    return PassageReading(containers=kept, plate=plate, images=len(items))

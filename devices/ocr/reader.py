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

from devices.image_file import MAX_PIXELS, MIN_SIDE, ImageError, decode, read_file
from devices.ocr import iso6346
from devices.ocr.columns import find_columns
from devices.ocr.containers import (
    Candidate,
    Token,
    check_digit_token,
    joined_candidates,
    merge_digit_runs,
    single_token_candidates,
)
from devices.ocr.engine import (
    DETECT_SIDE,
    Image,
    OcrEngine,
    TextBox,
    crop_box,
    shared_engine,
    upright_corners,
)
from devices.ocr.frames import erase_frames
from devices.ocr.plates import PROVINCES, find_plate, fits_colour, normalise_plate, plate_colour
from devices.ocr.rectify import rectify
from devices.ocr.results import (
    DEFAULT_REVIEW_THRESHOLD,
    Box,
    ContainerResult,
    ImageReading,
    PassageReading,
    PlateResult,
)
from devices.ocr.vertical import unstack

logger = logging.getLogger(__name__)

#: A rectangle in image pixels: x0, y0, x1, y1.
Rect = tuple[int, int, int, int]
#: A check-digit region looked at, as it is (False) or with frames erased (True).
Look = tuple[Rect, bool]

#: Images larger than this (longest side) are scaled down before detection.
WORK_SIDE = 2048
#: Longest side over shortest: beyond this, a frame scaled down to `WORK_SIDE` would be
#: thinner than `MIN_SIDE` — no camera's frame.
MAX_ASPECT = WORK_SIDE // MIN_SIDE
#: Boxes thinner than this (pixels, at working size) are not recognised.
MIN_TEXT_PX = 10
#: Width / height of a text box that may be a plate's line (one of two on a
#: two-line plate, or a whole one-line plate: the province character's box apart).
PLATE_ASPECT = (1.2, 8.0)
#: A check digit read alone in its box with a lower score is looked at again.
CHECK_BOX_SURE = 0.9
#: Smaller images are scaled up to this (longest side): small text reads better.
MIN_WORK_SIDE = 960
#: A box at least this many times wider than high is a line of text.
LINE_ASPECT = 2.5
#: Lines with the largest characters looked at face on when a frame reads no confident number.
RECTIFY_LINES = 2


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
    if max(height, width) > MAX_ASPECT * min(height, width):
        raise ImageError(
            f"image too narrow: {width}x{height} (at most {MAX_ASPECT} times longer than wide)"
        )
    checked: Image = np.ascontiguousarray(image)
    return checked


def decode_image(data: bytes) -> Image:
    """Decode JPEG/PNG/… bytes (their declared size checked first:
    `devices.image_file`), or ImageError."""
    return check_image(decode(data))


def load_image(path: str) -> Image:
    """Read an image file, or ImageError (OSError for a missing file)."""
    return check_image(read_file(path))


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
        default=5,
        ge=1,
        le=1000,
        description="text boxes recognised first (largest characters first); as many again, "
        "then the others, are read only while the boxes read do not give a confident number, "
        "its size/type code and the plate",
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
        containers, plate, boxes = self._pass(image, original, self.config.detect_side)
        if not _confident(containers) and max(image.shape[:2]) > self.config.detect_side:
            # Thin columns and widely spaced digits can be lost when detecting on the
            # scaled frame: a frame without a confident number is looked at again at
            # its own resolution, and the better reading kept.
            fine, fine_plate, _ = self._pass(image, original, max(image.shape[:2]))
            if _rank_key(fine) > _rank_key(containers):
                containers = fine
            plate = plate or fine_plate
        if not _confident(containers):
            # A door seen obliquely: its lines in perspective, the far characters small.
            # Read again face on (`rectify.py`).
            straight = self._rectified(image, boxes)
            if _rank_key(straight) > _rank_key(containers):
                containers = straight
        if not _confident(containers):
            # A number stacked down a corner post in thin strokes may not be detected
            # at all: columns are looked for from the characters themselves.
            stacked = self._columns(image)
            if _rank_key(stacked) > _rank_key(containers):
                containers = stacked
        elapsed = (time.perf_counter() - started) * 1000.0
        if scale != 1.0:  # boxes in the caller's pixels, not the working copy's
            containers = [replace(c, box=_unscaled(c.box, scale)) for c in containers]
            plate = replace(plate, box=_unscaled(plate.box, scale)) if plate else None
        return ImageReading(containers=containers, plate=plate, elapsed_ms=elapsed)

    def _columns(self, image: Image) -> list[ContainerResult]:
        """Numbers read from columns of stacked characters (`columns.find_columns`)."""
        found = find_columns(image)
        if not found:
            return []
        texts = self.engine.recognise([line for _, line in found])
        tokens = [
            Token(text, score, box, True)
            for (box, _), (text, score) in zip(found, texts, strict=True)
            if text.strip() and score >= 0.3
        ]
        return self._containers(image, tokens, {}) if tokens else []

    def _rectified(self, image: Image, boxes: list[TextBox]) -> list[ContainerResult]:
        """Numbers read from the face-on view of the lines with the largest characters
        that show perspective (at most `RECTIFY_LINES` of them), boxes in `image`'s pixels."""
        lines = sorted(
            (b for b in boxes if b.width >= LINE_ASPECT * b.height), key=_char_height, reverse=True
        )
        best: list[ContainerResult] = []
        for box in lines[:RECTIFY_LINES]:
            view = rectify(image, box)
            if view is None:
                continue
            found, _, _ = self._pass(view.image, view.image, max(view.image.shape[:2]), False)
            found = [replace(c, box=view.to_frame(c.box) if c.box else None) for c in found]
            if _rank_key(found) > _rank_key(best):
                best = found
            if _confident(best):
                break
        return best

    def _pass(
        self, image: Image, original: Image, detect_side: int, plates: bool = True
    ) -> tuple[list[ContainerResult], PlateResult | None, list[TextBox]]:
        """Detect at `detect_side`, recognise the largest text first, the rest if needed.
        Also returns the boxes detected."""
        boxes = [
            b
            for b in self.engine.detect(image, detect_side)
            if min(b.width, b.height) >= MIN_TEXT_PX
        ]
        stages = _stages(boxes, self.config.first_boxes)
        looks: dict[Look, tuple[str, float]] = {}  # check-digit regions read, by place
        tokens: list[Token] = []
        containers: list[ContainerResult] = []
        plate: PlateResult | None = None
        plates = plates and self.config.read_plates
        for stage in stages:
            # Settled (a confident number, its size/type code, the plate when wanted):
            # the other boxes need not be read.
            if tokens and _known(containers) and (plate is not None or not plates):
                break
            if tokens and plates and plate is None and _known(containers):
                # Only the plate is missing: of the other boxes, read those a plate could be.
                stage = [b for b in stage if _plate_like(image, b)]
            if not stage:
                continue
            tokens += self._tokens(image, stage)
            containers = self._containers(image, tokens, looks)
            plate = self._plate(image, original, tokens) if plates else None
        return containers, plate, boxes

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
        self, image: Image, tokens: list[Token], looks: dict[Look, tuple[str, float]]
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
            if found is None or found[1] < CHECK_BOX_SURE:
                # A framed digit read alone reads poorly: look at it with the serial.
                missing.append(cand)
        missing = [c for c in missing if not _already_seen(c, completed)]
        completed.extend(self._look_for_check_digits(image, missing, looks))
        results = [replace(self._judge(c), box=_number_box(c)) for c in completed]
        return self._rank(results, tokens)

    def _look_for_check_digits(
        self, image: Image, cands: list[Candidate], looks: dict[Look, tuple[str, float]]
    ) -> list[Candidate]:
        """Look again at the serial and what follows it, where the check digit should be.

        A lone framed digit reads poorly; the serial and the digit together read as
        one line, and the digit after the serial's six is the check digit. The region
        is read as it is and, when that gives no valid number and a frame is found in it,
        with the frame erased (`frames.py`); every reading found is judged, the check
        digit decides.
        `looks` holds the regions already read during this image's reading: the same
        serial found by several boxes, or again after the rest of the boxes are read,
        is looked at once.
        """
        rects = [_check_rect(image.shape, cand) for cand in cands]
        plain: dict[Look, Image] = {}
        for cand, rect in zip(cands, rects, strict=True):
            if rect is None or (rect, False) in looks or (rect, False) in plain:
                continue
            crop = _check_crop(image, rect, cand)
            if crop is not None:
                plain[(rect, False)] = crop
        looks.update(zip(plain, self.engine.recognise(list(plain.values())), strict=True))
        # The frame erased only where the region as it is gives no valid number: erasing
        # could then only read the same digit again, or a wrong one the check rejects.
        erased: dict[Look, Image] = {}
        for cand, rect in zip(cands, rects, strict=True):
            if rect is None or (rect, True) in looks or (rect, True) in erased:
                continue
            if _valid_after(cand, looks.get((rect, False))):
                continue
            crop = _check_crop(image, rect, cand, erase=True)
            if crop is None:
                looks[(rect, True)] = ("", 0.0)  # no frame in this region
            else:
                erased[(rect, True)] = crop
        looks.update(zip(erased, self.engine.recognise(list(erased.values())), strict=True))
        out: list[Candidate] = []
        for cand, rect in zip(cands, rects, strict=True):
            found = [
                check
                for erased in (True, False)
                if rect is not None and (rect, erased) in looks
                for check in [_check_after(cand.serial, *looks[(rect, erased)])]
                if check is not None
            ]
            if not found:
                out.append(cand)
            for digit, score in dict.fromkeys(found):
                out.append(
                    replace(
                        cand,
                        check=digit,
                        score=min(cand.score, score),
                        how=cand.how + "+check look",
                    )
                )
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
                doubtful=True,
            )
        number = first_ten + cand.check
        if iso6346.is_valid(number):
            confidence = 0.5 + 0.5 * cand.score
            doubtful = number[3] not in iso6346.CATEGORIES or cand.noisy
            if doubtful:
                # Real but rare (RWWL…); far more often a misread U: an officer looks.
                confidence = min(confidence, threshold - 0.05)
            return ContainerResult(
                number,
                confidence,
                True,
                doubtful or confidence < threshold,
                how=cand.how,
                char_height=cand.char_height,
                doubtful=doubtful,
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
                doubtful=True,
            )
        return ContainerResult(
            number,
            0.2 * cand.score,
            False,
            True,
            how=cand.how + " (check digit fails)",
            char_height=cand.char_height,
            alternatives=tuple(fixes),
            doubtful=True,
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

    def _plate(self, image: Image, original: Image, tokens: list[Token]) -> PlateResult | None:
        """The plate among the tokens (two-line plates joined), its format checked
        against its colour before its score counts as confidence."""
        found: list[PlateResult] = []
        cut_short: list[Token] = []
        for tok in tokens + _plate_joins(tokens):
            hit = find_plate(tok.text)
            if hit is None and _plate_start(tok.text):
                cut_short.append(tok)
            if hit is not None:
                result = self._plate_result(image, tok.box, hit, tok.score)
                if result.doubtful:
                    # A character lost at the box's end (the eighth of a green plate):
                    # read a wider cut of the same line once.
                    ((text, score),) = self.engine.recognise([crop_box(image, tok.box, pad=0.4)])
                    wider = find_plate(text)
                    if wider is not None:
                        again = self._plate_result(image, tok.box, wider, score)
                        if not again.doubtful:
                            result = again
                found.append(result)
        if not found and cut_short:
            # A plate's start without its end (a last 领/警 or the eighth character in
            # another colour, outside the box): read the line a character further.
            tok = max(cut_short, key=lambda t: t.score)
            box = _along_line(tok.box, 1.3 * tok.box.height, 0.0)
            ((text, score),) = self.engine.recognise([crop_box(image, box)])
            hit = find_plate(text)
            if hit is not None:
                found.append(self._plate_result(image, tok.box, hit, min(score, tok.score)))
        if (
            not found
            and original.shape[1] <= 480
            and 1.5 < original.shape[1] / original.shape[0] < 8
        ):
            # A plate crop: the detector may miss the single line; read the whole image.
            ((text, score),) = self.engine.recognise([original])
            hit = find_plate(text)
            if hit is not None:
                colour = plate_colour(original)
                found.append(self._judge_plate(hit, score, colour))
        if not found:
            return None
        return max(found, key=lambda p: (not p.doubtful, p.confidence))

    def _plate_result(
        self, image: Image, box: TextBox, hit: tuple[str, str], score: float
    ) -> PlateResult:
        result = self._judge_plate(hit, score, plate_colour(crop_box(image, box, pad=0.15)))
        return replace(result, box=box.bounds)

    def _judge_plate(self, hit: tuple[str, str], score: float, colour: str | None) -> PlateResult:
        """Format and colour first: a reading that cannot sit on a plate of this colour
        (seven characters on a green new-energy plate) goes to review whatever its score."""
        text, kind = hit
        threshold = self.config.review_threshold
        doubtful = not fits_colour(text, kind, colour)
        confidence = min(score, threshold - 0.05) if doubtful else score
        return PlateResult(
            text, confidence, doubtful or confidence < threshold, kind, doubtful=doubtful
        )


def _valid_after(cand: Candidate, look: tuple[str, float] | None) -> bool:
    """True when a look's text gives `cand` a check digit that passes the check."""
    found = _check_after(cand.serial, *look) if look is not None else None
    return found is not None and iso6346.is_valid(cand.owner + cand.serial + found[0])


def _already_seen(cand: Candidate, completed: list[Candidate]) -> bool:
    """True when the number `cand` begins was read whole, its check digit valid, at least
    as surely: a look for its check digit could only find that number again, no surer
    (the ten characters decide the digit; a look's score is capped by the candidate's)."""
    return any(
        c.owner == cand.owner
        and c.serial == cand.serial
        and c.check is not None
        and iso6346.is_valid(c.owner + c.serial + c.check)
        and c.score >= cand.score
        and (cand.noisy or not c.noisy)
        for c in completed
    )


def _number_box(cand: Candidate) -> Box:
    """Where a number was read: its boxes, and the check digit printed apart after them."""
    x0, y0, x1, y1 = cand.region or cand.tail.bounds
    if "+check" in cand.how:
        if cand.vertical:
            y1 += 2.0 * cand.char_height
        else:
            x1 += 2.0 * cand.char_height
    return x0, y0, x1, y1


def _unscaled(box: Box | None, scale: float) -> Box | None:
    if box is None:
        return None
    x0, y0, x1, y1 = box
    return x0 / scale, y0 / scale, x1 / scale, y1 / scale


def _plate_start(text: str) -> bool:
    """Six or seven characters that begin like a plate: province, then a letter."""
    norm = normalise_plate(text)
    return len(norm) in (6, 7) and norm[0] in PROVINCES and norm[1].isascii() and norm[1].isalpha()


def _plate_joins(tokens: list[Token]) -> list[Token]:
    """Plates the detector cut into pieces, joined into one reading.

    Two-line plates (large vehicles, motorcycles): the province and authority letter
    above the serial, placed on the serial's box. One line cut in two (the province
    character or a last 警/学/领 boxed apart): neighbours on the same line, the gap
    between them under a character's height, placed on the box around both.
    """
    out: list[Token] = []
    short = [t for t in tokens if not t.vertical and len(normalise_plate(t.text)) <= 8]
    for first in short:
        head = normalise_plate(first.text)
        ux0, uy0, ux1, uy1 = first.box.bounds
        for second in short:
            tail = normalise_plate(second.text)
            if second is first or len(head) + len(tail) not in (7, 8):
                continue
            lx0, ly0, lx1, ly1 = second.box.bounds
            score = min(first.score, second.score)
            upper_h, lower_h = uy1 - uy0, ly1 - ly0
            drop = (ly0 + ly1 - uy0 - uy1) / 2  # from the first's centre to the second's
            if (
                len(head) == 2
                and head[0] in PROVINCES
                and 0.4 * upper_h <= drop <= upper_h / 2 + 1.2 * lower_h
                and lx0 <= (ux0 + ux1) / 2 <= lx1
                and ux1 - ux0 < 1.2 * (lx1 - lx0)
            ):
                out.append(Token(head + tail, score, second.box))
            elif (
                0.6 < lower_h / upper_h < 1.6
                and -0.3 * upper_h <= lx0 - ux1 <= upper_h
                and abs((uy0 + uy1) - (ly0 + ly1)) / 2 < 0.4 * upper_h
            ):
                points = np.concatenate([first.box.points, second.box.points])
                corners = upright_corners(cv2.boxPoints(cv2.minAreaRect(points)).astype(np.float32))
                out.append(Token(head + tail, score, TextBox(corners)))
    return out


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


def _check_after(serial: str, text: str, score: float) -> tuple[str, float] | None:
    """The check digit read after `serial` in a look's text, with its score, or None.

    The digit after the serial's six (the serial may differ by one glyph when the
    look holds exactly seven digits); a letter alone after the serial is taken for
    the digit it resembles (a boxed 8 read as B): the check digit still decides.
    """
    if score < 0.5:
        return None
    norm = iso6346.normalise(text)
    digits = "".join(ch for ch in norm if ch.isdigit())
    at = digits.find(serial)
    if (
        at < 0
        and len(digits) == 7
        and sum(a != b for a, b in zip(digits[:6], serial, strict=True)) <= 1
    ):
        at = 0
    if at >= 0 and len(digits) == at + 7:
        return digits[at + 6], score
    at = norm.find(serial)
    if at >= 0 and len(norm) == at + 7 and norm[-1] in iso6346.LETTER_TO_DIGIT:
        return iso6346.LETTER_TO_DIGIT[norm[-1]], score
    return None


def _check_crop(image: Image, rect: Rect, cand: Candidate, erase: bool = False) -> Image | None:
    """The check-digit region as one line (a column's characters laid side by side).

    A line's region follows the line itself: the serial's box extended along its own
    direction and cut out straightened, so that a slanted line (a door seen obliquely)
    is read level. With `erase`, the frame around a boxed check digit erased
    (`frames.py`), or None when there is no frame; frames are looked for in a margin
    around the region (half a character), so that a frame taller than the serial's box
    is seen whole.
    """
    char = cand.char_height
    m = round(0.5 * char) if erase else 0
    if cand.vertical:
        x0, y0, x1, y1 = rect
        h, w = image.shape[:2]
        ex0, ey0, ex1, ey1 = max(0, x0 - m), max(0, y0 - m), min(w, x1 + m), min(h, y1 + m)
        region: Image = np.ascontiguousarray(image[ey0:ey1, ex0:ex1])
        inner = (x0 - ex0, y0 - ey0, x1 - ex0, y1 - ey0)
    else:
        box = _along_line(cand.tail, 2.2 * char, 0.3 * char)
        region = crop_box(image, _along_line(box, m, m, back=m) if m else box)
        inner = (m, m, region.shape[1] - m, region.shape[0] - m)
    if erase:
        erased = erase_frames(region)
        if erased is None:
            return None
        region = np.ascontiguousarray(erased[inner[1] : inner[3], inner[0] : inner[2]])
    if cand.vertical:
        line = unstack(region)
        return line if line is not None else region
    return region


def _along_line(box: TextBox, ahead: float, side: float, back: float = 0.0) -> TextBox:
    """`box` grown along its own line: `ahead` px forwards, `back` px backwards and
    `side` px above and below."""
    tl, tr, br, bl = box.points.astype(np.float64)
    along = (tr - tl) + (br - bl)
    along /= float(np.linalg.norm(along)) or 1.0
    across = np.array([-along[1], along[0]])
    return TextBox(
        np.array(
            [
                tl - along * back - across * side,
                tr + along * ahead - across * side,
                br + along * ahead + across * side,
                bl - along * back + across * side,
            ],
            dtype=np.float32,
        )
    )


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


def _known(containers: list[ContainerResult]) -> bool:
    """A confident top number with its size/type code: nothing more to learn about it."""
    return _confident(containers) and containers[0].iso_type is not None


def _plate_like(image: Image, box: TextBox) -> bool:
    """A box that may hold a plate (or one line of a two-line plate): a line, not a
    column or a long text, on a plate's colour (`plates.plate_colour`)."""
    if not PLATE_ASPECT[0] <= box.width / max(1.0, box.height) <= PLATE_ASPECT[1]:
        return False
    return plate_colour(crop_box(image, box, pad=0.15)) is not None


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


def _stages(boxes: list[TextBox], first: int) -> list[list[TextBox]]:
    """Boxes in the order they are recognised: the `first` with the largest characters,
    the next `first`, then the rest. Reading stops as soon as a stage settles the image.

    The container number is painted in the largest characters on a door or side;
    the size/type code a little smaller; weights, tare and capacity labels smaller still.
    """
    ordered = sorted(boxes, key=_char_height, reverse=True)
    return [ordered[:first], ordered[first : 2 * first], ordered[2 * first :]]


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
                needs_review=confidence < review_threshold
                or not top.check_digit_ok
                or top.doubtful,
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

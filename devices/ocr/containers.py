"""Finding ISO 6346 numbers among recognised text boxes: joining, correcting, scoring.

Pure functions over `Token`s (text, score, box); the image work is in `reader.py`.
Layouts handled: the whole number in one box; owner code, serial and check digit in
separate boxes on one line; owner code above the serial (two or three lines);
vertical columns (already turned into lines by `vertical.unstack`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from devices.ocr import iso6346
from devices.ocr.engine import TextBox, upright_corners


@dataclass(frozen=True)
class Token:
    """A recognised text box. `vertical` when read from a stacked column."""

    text: str
    score: float
    box: TextBox
    vertical: bool = False

    @property
    def norm(self) -> str:
        return iso6346.normalise(self.text)

    @property
    def char_height(self) -> float:
        """Approximate height of one character in pixels."""
        if self.vertical:
            return self.box.width
        return self.box.height


@dataclass(frozen=True)
class Candidate:
    """Ten or eleven characters assembled from tokens, before checking."""

    owner: str  # four letters
    serial: str  # six digits
    check: str | None  # the check digit as read, or None when not seen
    score: float  # the weakest recognition score among the parts
    how: str
    char_height: float
    tail: TextBox  # the box holding the serial's end (where the check digit follows)
    vertical: bool
    noisy: bool = False
    #: The boxes it was assembled from, joined (where the number is in the image).
    region: tuple[float, float, float, float] | None = None


_OWNER_RE = re.compile(r"^[A-Z0-9]{3}[A-Z0-9]$")


def owner_part(text: str) -> str | None:
    """Four characters that coerce to letters (owner code + category), or None."""
    if len(text) != 4:
        return None
    out = []
    for i, ch in enumerate(text):
        if ch.isalpha():
            out.append(ch)
        elif i == 3 and ch == "0":
            out.append("U")
        elif ch in iso6346.DIGIT_TO_LETTER and i < 3:
            out.append(iso6346.DIGIT_TO_LETTER[ch])
        else:
            return None
    owner = "".join(out)
    # Owner codes are mostly letters as read: refuse a "word" made of digits.
    if sum(ch.isdigit() for ch in text) > 1:
        return None
    return owner


def digit_part(text: str) -> str | None:
    """Characters that coerce to digits, or None."""
    out = []
    for ch in text:
        if ch.isdigit():
            out.append(ch)
        elif ch in iso6346.LETTER_TO_DIGIT:
            out.append(iso6346.LETTER_TO_DIGIT[ch])
        else:
            return None
    if sum(ch.isalpha() for ch in text) > max(1, len(text) // 3):
        return None
    return "".join(out)


def _split_owner_serial(text: str) -> tuple[str, str, str | None] | None:
    """Owner, serial and maybe check digit from one token's text of 10 or 11 characters."""
    if len(text) not in (10, 11):
        return None
    owner = owner_part(text[:4])
    digits = digit_part(text[4:])
    if owner is None or digits is None:
        return None
    return owner, digits[:6], digits[6] if len(digits) == 7 else None


def single_token_candidates(tokens: list[Token]) -> list[Candidate]:
    """Numbers read whole from one box (any 10/11-character window of its text)."""
    out: list[Candidate] = []
    for tok in tokens:
        text = tok.norm
        for length in (11, 10):
            for start in range(0, max(0, len(text) - length) + 1):
                parts = _split_owner_serial(text[start : start + length])
                if parts is None:
                    continue
                owner, serial, check = parts
                # A number cut from a longer line (stray glyphs around it) is less sure:
                # the line's segmentation may have split or merged characters.
                noisy = len(text) - length >= 2
                out.append(
                    Candidate(
                        owner,
                        serial,
                        check,
                        tok.score,
                        "part of a longer box" if noisy else "one box",
                        tok.char_height,
                        tok.box,
                        tok.vertical,
                        noisy=noisy,
                        region=tok.box.bounds,
                    )
                )
    return out


def _axes(box: TextBox) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Unit vectors along the box's text line and across it (downwards)."""
    p = box.points.astype(np.float64)
    along = (p[1] - p[0]) + (p[2] - p[3])
    norm = float(np.linalg.norm(along)) or 1.0
    u = along / norm
    v = np.array([-u[1], u[0]])
    return u, v


def _extent(box: TextBox, axis: npt.NDArray[np.float64]) -> tuple[float, float]:
    proj = box.points.astype(np.float64) @ axis
    return float(proj.min()), float(proj.max())


def _near(a: TextBox, b: TextBox, char: float, vertical: bool) -> str | None:
    """How box `b` follows box `a` in reading order: "line", "below", or None.

    Measured in the frame of `a`'s own text line, so that slanted (perspective)
    text joins as well as level text.
    """
    u, v = _axes(a)
    if vertical:
        # Stacked columns: the reading direction is down the column.
        u, v = v, u
    a_lo, a_hi = _extent(a, u)
    b_lo, b_hi = _extent(b, u)
    a_bottom = _extent(a, v)[1]
    b_top = _extent(b, v)[0]
    ca = float(np.asarray(a.center) @ v)
    cb = float(np.asarray(b.center) @ v)
    gap = b_lo - a_hi
    if abs(ca - cb) < 0.6 * char and -0.5 * char < gap < 3.5 * char:
        return "below" if vertical else "line"
    if vertical:
        return None
    # Next line: just below, starting near the same left edge or overlapping.
    line_gap = b_top - a_bottom
    overlap = min(a_hi, b_hi) - max(a_lo, b_lo)
    if -0.3 * char <= line_gap < 1.8 * char and (abs(a_lo - b_lo) < 2.5 * char or overlap > 0):
        return "below"
    return None


def merge_digit_runs(tokens: list[Token]) -> list[Token]:
    """Extra tokens joining digit boxes that continue each other on one line (772 + 5126)."""
    extra: list[Token] = []
    for a in tokens:
        if not a.norm.isdigit() or len(a.norm) >= 6:
            continue
        for b in tokens:
            if b is a or not b.norm.isdigit() or a.vertical != b.vertical:
                continue
            if len(a.norm) + len(b.norm) not in (6, 7):
                continue
            if not 0.6 < b.char_height / a.char_height < 1.6:
                continue
            if _near(a.box, b.box, a.char_height, a.vertical) not in ("line", "below") or (
                not a.vertical and _near(a.box, b.box, a.char_height, False) != "line"
            ):
                continue
            points = np.concatenate([a.box.points, b.box.points])
            rect = cv2.minAreaRect(points)
            corners = upright_corners(cv2.boxPoints(rect).astype(np.float32))
            extra.append(
                Token(a.text + b.text, min(a.score, b.score), TextBox(corners), a.vertical)
            )
    return extra


def joined_candidates(tokens: list[Token]) -> list[Candidate]:
    """Numbers assembled from an owner-code box followed by a serial box (and a check box)."""
    out: list[Candidate] = []
    owners = [(t, owner_part(t.norm)) for t in tokens]
    # A stray mark read as a fifth letter ("SMSUE"): try both four-letter windows.
    owners += [
        (t, owner_part(t.norm[i : i + 4])) for t in tokens if len(t.norm) == 5 for i in (0, 1)
    ]
    serials = [(t, digit_part(t.norm)) for t in tokens]
    for otok, owner in owners:
        if owner is None:
            continue
        for stok, digits in serials:
            if digits is None or stok is otok or len(digits) not in (6, 7):
                continue
            char = otok.char_height
            if otok.vertical != stok.vertical:
                continue
            if otok.vertical:
                # Column widths vary with the letters (I vs M): compare loosely.
                char = max(char, stok.char_height)
            elif not 0.55 < stok.char_height / char < 1.8:
                continue
            relation = _near(otok.box, stok.box, char, otok.vertical)
            if relation is None:
                continue
            out.append(
                Candidate(
                    owner,
                    digits[:6],
                    digits[6] if len(digits) == 7 else None,
                    min(otok.score, stok.score),
                    f"owner+serial ({relation})",
                    char,
                    stok.box,
                    otok.vertical,
                    region=_joined(otok.box, stok.box),
                )
            )
    return out


def _joined(a: TextBox, b: TextBox) -> tuple[float, float, float, float]:
    """The rectangle around two boxes."""
    (ax0, ay0, ax1, ay1), (bx0, by0, bx1, by1) = a.bounds, b.bounds
    return min(ax0, bx0), min(ay0, by0), max(ax1, bx1), max(ay1, by1)


def check_digit_token(cand: Candidate, tokens: list[Token]) -> tuple[str, float] | None:
    """A one-digit box right after (or below) the serial: the check digit printed apart."""
    best: tuple[float, str, float] | None = None
    for tok in tokens:
        if tok.box is cand.tail:
            continue
        digits = digit_part(tok.norm)
        if digits is None or len(digits) != 1:
            continue
        if not 0.5 < tok.char_height / cand.char_height < 1.8:
            continue
        relation = _near(cand.tail, tok.box, cand.char_height, cand.vertical)
        if relation is None:
            continue
        ax, ay = cand.tail.center
        bx, by = tok.box.center
        distance = abs(ax - bx) + abs(ay - by)
        if best is None or distance < best[0]:
            best = (distance, digits, tok.score)
    return (best[1], best[2]) if best else None

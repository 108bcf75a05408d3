"""Finding ISO 6346 numbers among recognised text boxes: joining, correcting, scoring.

Pure functions over `Token`s (text, score, box); the image work is in `reader.py`.
Layouts handled: the whole number in one box; owner code, serial and check digit in
separate boxes on one line; owner code above the serial (two or three lines);
vertical columns (already turned into lines by `vertical.unstack`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from devices.ocr import iso6346
from devices.ocr.engine import TextBox


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
                out.append(
                    Candidate(
                        owner, serial, check, tok.score, "one box", tok.char_height, tok.box, tok.vertical
                    )
                )
    return out


def _near(a: TextBox, b: TextBox, char: float, vertical: bool) -> str | None:
    """How box `b` follows box `a` in reading order: "line", "below", or None."""
    ax0, ay0, ax1, ay1 = a.bounds
    bx0, by0, bx1, by1 = b.bounds
    acx, acy = a.center
    bcx, bcy = b.center
    if vertical:
        if abs(acx - bcx) < 1.0 * char and -0.5 * char < by0 - ay1 < 2.5 * char:
            return "below"
        return None
    if abs(acy - bcy) < 0.5 * char and -0.5 * char < bx0 - ax1 < 3.5 * char:
        return "line"
    if 0 <= by0 - ay1 + 0.3 * char < 1.8 * char and (abs(ax0 - bx0) < 2.5 * char or bx0 < acx < bx1):
        return "below"
    return None


def joined_candidates(tokens: list[Token]) -> list[Candidate]:
    """Numbers assembled from an owner-code box followed by a serial box (and a check box)."""
    out: list[Candidate] = []
    owners = [(t, owner_part(t.norm)) for t in tokens]
    serials = [(t, digit_part(t.norm)) for t in tokens]
    for otok, owner in owners:
        if owner is None:
            continue
        for stok, digits in serials:
            if digits is None or stok is otok or len(digits) not in (6, 7):
                continue
            char = otok.char_height
            if not 0.6 < stok.char_height / char < 1.7 or otok.vertical != stok.vertical:
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
                )
            )
    return out


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

"""ISO 6346 container identification: check digit, position-aware correction, size/type codes.

The check digit itself is `devices.iso6346` (one implementation for the reader and the
server), re-exported here. Pure functions, no I/O.

A container number is an owner code of three letters, a category identifier (``U``
freight container, ``J`` detachable equipment, ``Z`` trailer or chassis), a six-digit
serial number and a check digit, e.g. ``CSQU3054383``.

The check digit (ISO 6346:1995 Annex A, also described on Wikipedia "ISO 6346"):
each letter has a value starting at A=10 and skipping 11, 22 and 33 (the multiples
of 11), so A=10, B=12 … K=21, L=23 … U=32, V=34 … Z=38; digits keep their value.
Position *i* (0-based) is weighted by 2**i; the sum modulo 11 is the check digit,
and a remainder of 10 is printed as 0. Because of the skipped multiples of 11,
letters whose values differ by 11 (A/K/U, B/L/V, C/M/W …) give the same remainder
in some positions and cannot always be told apart by the check digit.
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from typing import Final

# The check digit, re-exported for the reader and its callers.
from devices.iso6346 import LETTER_VALUES as LETTER_VALUES
from devices.iso6346 import NUMBER_RE as NUMBER_RE
from devices.iso6346 import char_value as char_value
from devices.iso6346 import check_digit as check_digit
from devices.iso6346 import is_valid as is_valid
from devices.iso6346 import with_check_digit as with_check_digit

CATEGORIES: Final = "UJZ"

#: What an OCR engine typically reads instead of a letter (digit → letter) …
DIGIT_TO_LETTER: Final[dict[str, str]] = {
    "0": "O",
    "1": "I",
    "2": "Z",
    "4": "A",
    "5": "S",
    "6": "G",
    "7": "T",
    "8": "B",
}
#: … and instead of a digit (letter → digit).
LETTER_TO_DIGIT: Final[dict[str, str]] = {
    "O": "0",
    "D": "0",
    "Q": "0",
    "U": "0",
    "C": "0",
    "I": "1",
    "L": "1",
    "J": "1",
    "T": "7",
    "Z": "2",
    "S": "5",
    "B": "8",
    "G": "6",
    "A": "4",
}
#: Pairs of glyphs that look alike, used to propose alternatives for one position.
_LOOKALIKE_GROUPS: Final = (
    "0ODQUC",
    "1IL7JT",
    "2Z",
    "5S",
    "8B3",
    "6G",
    "4A",
    "MN",
    "UVW",
    "VY",
    "EF",
    "HN",
    "KX",
    "PR",
)
LOOKALIKES: Final[dict[str, str]] = {}
for _group in _LOOKALIKE_GROUPS:
    for _ch in _group:
        LOOKALIKES[_ch] = LOOKALIKES.get(_ch, "") + "".join(c for c in _group if c != _ch)
del _group, _ch


def normalise(raw: str) -> str:
    """Upper case with everything but letters and digits removed.

    NFKC first: Chinese OCR models often return full-width forms (Ｔ, ７).
    """
    text = unicodedata.normalize("NFKC", raw).upper()
    return "".join(ch for ch in text if ch.isascii() and ch.isalnum())


def coerce(raw: str) -> str | None:
    """Position-aware correction of an 11-character reading, without any guessing.

    Letters are forced in the owner code and category (positions 0–3), digits in
    the serial and check digit (4–10), using the usual OCR confusions (O/0, I/1,
    S/5, B/8, Z/2, G/6 …). Returns None when a position cannot be coerced.
    """
    text = normalise(raw)
    if len(text) != 11:
        return None
    out: list[str] = []
    for i, ch in enumerate(text):
        if i == 3 and not ch.isalpha():
            # The category letter is U for almost every freight container.
            ch = {"0": "U", "1": "J", "2": "Z"}.get(ch, "")
        elif i < 4:
            ch = ch if ch.isalpha() else DIGIT_TO_LETTER.get(ch, "")
        else:
            ch = ch if ch.isdigit() else LETTER_TO_DIGIT.get(ch, "")
        if not ch:
            return None
        out.append(ch)
    return "".join(out)


def _position_options(ch: str, i: int) -> str:
    """Characters that `ch` at position `i` might really be (itself first)."""
    options = ch + LOOKALIKES.get(ch, "")
    if i < 3:
        return "".join(c for c in options if c.isalpha())
    if i == 3:
        return options[0] + "".join(c for c in options[1:] if c in CATEGORIES)
    return "".join(c for c in options if c.isdigit())


def repairs(number: str, max_changes: int = 1) -> list[str]:
    """Valid numbers reachable from `number` by changing up to `max_changes` look-alike glyphs.

    `number` must already be coerced (letters then digits). The caller decides:
    exactly one result may be accepted for review, several mean the reading is
    ambiguous and must not be "repaired" by picking one.
    """
    if not NUMBER_RE.match(number):
        return []
    if is_valid(number):
        return [number]
    found: list[str] = []
    for changes in range(1, max_changes + 1):
        for positions in itertools.combinations(range(11), changes):
            choices = [_position_options(number[p], p)[1:] for p in positions]
            for replacement in itertools.product(*choices):
                chars = list(number)
                for p, ch in zip(positions, replacement, strict=True):
                    chars[p] = ch
                candidate = "".join(chars)
                if is_valid(candidate) and candidate not in found:
                    found.append(candidate)
        if found:
            break
    return found


# ISO 6346:1995 size and type codes (Wikipedia "ISO 6346", section "Size and type codes").
_LENGTH_CODES: Final = "1234ABCDEFGHKLMNP"
_HEIGHT_CODES: Final = "0245689CDEFLMNP"
_TYPE_GROUPS: Final = "GVBSRHUPTAK"
SIZE_TYPE_RE: Final = re.compile(rf"^[{_LENGTH_CODES}][{_HEIGHT_CODES}][{_TYPE_GROUPS}][0-9]$")


def coerce_size_type(raw: str) -> str | None:
    """A four-character size/type code (e.g. 22G1, 45R1, L5G1) or None.

    The two size characters are mostly digits, the type group a letter (a ``6``
    read for ``G`` is corrected), the last a digit.
    """
    text = normalise(raw)
    if len(text) != 4:
        return None
    size = text[:2].replace("O", "0").replace("Z", "2").replace("S", "5").replace("B", "8")
    group = {"6": "G", "0": "U", "8": "B", "5": "S"}.get(text[2], text[2])
    last = LETTER_TO_DIGIT.get(text[3], text[3])
    code = f"{size}{group}{last}"
    return code if SIZE_TYPE_RE.match(code) else None

"""ISO 6346 container numbers: the check digit, in one place for every deployable piece.

The gate reader (`devices.ocr.iso6346`, with its OCR-specific coercion and repairs) and
the server (an officer's correction of a reading, docs/gates.md) both check numbers
here. Pure functions, no I/O.

A container number is an owner code of three letters, a category identifier (``U``
freight container, ``J`` detachable equipment, ``Z`` trailer or chassis), a six-digit
serial number and a check digit, e.g. ``CSQU3054383``. The check digit (ISO 6346:1995
Annex A): each letter has a value starting at A=10 and skipping 11, 22 and 33 (the
multiples of 11), so A=10, B=12 … K=21, L=23 … U=32, V=34 … Z=38; digits keep their
value. Position *i* (0-based) is weighted by 2**i; the sum modulo 11 is the check digit,
and a remainder of 10 is printed as 0.
"""

from __future__ import annotations

import re
import string
from typing import Final

#: Letter values: from 10 upwards, skipping multiples of 11.
LETTER_VALUES: Final[dict[str, int]] = {}
_value = 10
for _letter in string.ascii_uppercase:
    if _value % 11 == 0:
        _value += 1
    LETTER_VALUES[_letter] = _value
    _value += 1
del _value, _letter

#: Shape of a number. The category letter is U, J or Z by the standard, but real
#: containers carry others (e.g. ``RWWL4564317``), so any letter passes here and
#: the check digit decides.
NUMBER_RE: Final = re.compile(r"^[A-Z]{4}[0-9]{7}$")


def char_value(ch: str) -> int:
    """The value of one character of the first ten: digit value or letter value."""
    if ch.isdigit():
        return int(ch)
    try:
        return LETTER_VALUES[ch]
    except KeyError:
        raise ValueError(f"{ch!r} is not a letter A-Z or a digit") from None


def check_digit(first_ten: str) -> int:
    """The check digit of owner code + category + serial (ten characters)."""
    if len(first_ten) != 10:
        raise ValueError(f"need the ten characters before the check digit, got {first_ten!r}")
    if not re.fullmatch(r"[A-Z]{4}[0-9]{6}", first_ten):
        raise ValueError(f"{first_ten!r} is not four letters and six digits")
    total = sum(char_value(ch) << i for i, ch in enumerate(first_ten))
    return total % 11 % 10


def is_valid(number: str) -> bool:
    """True when `number` is a well-formed ISO 6346 number whose check digit matches."""
    if not NUMBER_RE.match(number):
        return False
    return check_digit(number[:10]) == int(number[10])


def with_check_digit(first_ten: str) -> str:
    """`first_ten` followed by its check digit."""
    return f"{first_ten}{check_digit(first_ten)}"


def why_invalid(number: str) -> str | None:
    """None for a valid number, else why it is not one (for an officer's correction)."""
    if not NUMBER_RE.match(number):
        return f"{number!r} is not four letters and seven digits (e.g. CSQU3054383)"
    expected = check_digit(number[:10])
    if expected != int(number[10]):
        return f"{number} fails its ISO 6346 check digit (the first ten give {expected})"
    return None

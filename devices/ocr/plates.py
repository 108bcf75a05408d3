"""Chinese licence plates (GA 36-2018 formats): validation and position-aware correction.

Pure functions, no I/O. Formats recognised:

- ordinary: province character, issuing-authority letter, five letters/digits
  (``粤B12345``, ``皖A195K9``); letters I and O are not used in the serial;
- new-energy (green, eight characters): province, letter, then ``D``/``F`` + five
  digits for small cars (``粤BD12345``) or five digits + ``D``/``F`` for large
  vehicles (``粤B12345D``);
- special endings: ``学`` (coach), ``警`` (police), ``挂`` (trailer), ``领``
  (consulate), ``试``, ``超``, and ``港``/``澳`` for Guangdong cross-border plates
  (``粤Z1234港``);
- armed police ``WJ`` plates (``WJ1693015``, ``WJ粤12345``) and embassy plates
  (``使014123``).
"""

from __future__ import annotations

import re
import unicodedata
from typing import Final

PROVINCES: Final = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼"
_SERIAL = "[A-HJ-NP-Z0-9]"
_AUTHORITY = "[A-Z]"

PLATE_FORMATS: Final[dict[str, re.Pattern[str]]] = {
    "ordinary": re.compile(rf"^[{PROVINCES}]{_AUTHORITY}{_SERIAL}{{5}}$"),
    "new_energy_small": re.compile(rf"^[{PROVINCES}]{_AUTHORITY}[DF]{_SERIAL}[0-9]{{4}}$"),
    "new_energy_large": re.compile(rf"^[{PROVINCES}]{_AUTHORITY}[0-9]{{5}}[DF]$"),
    "special": re.compile(rf"^[{PROVINCES}]{_AUTHORITY}{_SERIAL}{{4}}[学警挂领试超]$"),
    "cross_border": re.compile(r"^粤Z[A-HJ-NP-Z0-9]{4}[港澳]$"),
    "armed_police": re.compile(rf"^WJ(?:[{PROVINCES}]|[0-9]{{2}})?[0-9A-Z]{{5}}$"),
    "embassy": re.compile(r"^使[0-9]{6}$"),
}

#: Common misreadings of the province character by Chinese OCR models.
_PROVINCE_LOOKALIKES: Final[dict[str, str]] = {
    "晥": "皖",
    "鄂": "鄂",
    "粵": "粤",
    "冀": "冀",
    "滬": "沪",
}


def plate_kind(text: str) -> str | None:
    """The format `text` matches, or None when it is not a valid plate."""
    for kind, pattern in PLATE_FORMATS.items():
        if pattern.match(text):
            return kind
    return None


def normalise_plate(raw: str) -> str:
    """Upper case; separators (·, •, -, spaces) removed; O/I fixed in the serial part."""
    text = unicodedata.normalize("NFKC", raw).strip().upper()
    text = "".join(ch for ch in text if ch not in " ·•.-_:：,，")
    text = "".join(_PROVINCE_LOOKALIKES.get(ch, ch) for ch in text)
    if len(text) >= 3 and text[0] in PROVINCES:
        head, tail = text[:2], text[2:]
        head = head[0] + {"0": "D", "8": "B", "1": "J", "2": "Z", "5": "S", "6": "G"}.get(
            head[1], head[1]
        )
        tail = tail.replace("O", "0").replace("I", "1")
        text = head + tail
    return text


def find_plate(raw: str) -> tuple[str, str] | None:
    """(plate, kind) found in one recognised line, or None."""
    text = normalise_plate(raw)
    kind = plate_kind(text)
    if kind:
        return text, kind
    # A province character somewhere inside a longer line.
    for start, ch in enumerate(text):
        if ch in PROVINCES or ch == "W":
            for length in (8, 7, 9):
                piece = text[start : start + length]
                kind = plate_kind(piece)
                if kind:
                    return piece, kind
    return None

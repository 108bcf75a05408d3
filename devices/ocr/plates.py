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

Each plate type has its colour (GA 36-2018, 中华人民共和国机动车号牌, the public
standard of the Ministry of Public Security; summarised on Wikipedia, "中华人民共和国
机动车号牌"): blue with white characters for small cars (seven characters); yellow
with black for large vehicles, trailers, coaches and motorcycles (seven, large
vehicles and motorcycles on two lines); a white-to-green gradient for small
new-energy cars and yellow-green for large ones (eight characters, black); white for
police; black for consulates, embassies and Hong Kong/Macao vehicles. `fits_colour`
says whether a reading's format may sit on a plate of the colour seen: a seven-character
reading of a green plate (whose plates have eight) is a misreading, whatever the score.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Final

import cv2
import numpy as np
import numpy.typing as npt

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
#: Chinese characters the recogniser reads for a plate's Latin letters.
_LATIN_LOOKALIKES: Final[dict[str, str]] = {"丫": "Y", "三": "E", "〇": "0"}


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
    text = text[:1] + "".join(_LATIN_LOOKALIKES.get(ch, ch) for ch in text[1:])
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


#: The formats each plate colour carries (GA 36-2018), by `plate_colour`'s names.
COLOUR_FORMATS: Final[dict[str, frozenset[str]]] = {
    "blue": frozenset({"ordinary"}),
    "yellow": frozenset({"ordinary", "special", "new_energy_large"}),
    "green": frozenset({"new_energy_small", "new_energy_large"}),
    "white": frozenset({"special", "armed_police"}),
    "black": frozenset({"special", "cross_border", "embassy"}),
}
#: Endings of `special` plates by colour: 警 white; 领 black; 学, 挂, 试, 超 yellow.
_SPECIAL_COLOURS: Final[dict[str, str]] = {
    "警": "white",
    "领": "black",
    "学": "yellow",
    "挂": "yellow",
    "试": "yellow",
    "超": "yellow",
}


def plate_colour(crop: npt.NDArray[np.uint8]) -> str | None:
    """The background colour of a plate crop (BGR): blue, yellow, green, white, black.

    The background is the majority of a plate's pixels (characters are thin). None
    when the crop shows no clear plate colour (a grey, a washed-out or mixed region):
    then no colour rule is applied.
    """
    if crop.size == 0:
        return None
    hsv = cv2.cvtColor(crop, cv2.COLOR_BGR2HSV).reshape(-1, 3).astype(np.int32)
    chromatic = (hsv[:, 1] > 70) & (hsv[:, 2] > 60)
    if chromatic.mean() > 0.35:
        hue = float(np.median(hsv[chromatic, 0]))  # OpenCV hue: 0-180
        if 95 <= hue <= 130:
            return "blue"
        if 12 <= hue < 36:
            return "yellow"
        if 36 <= hue < 90:
            return "green"
        return None
    value = float(np.median(hsv[:, 2]))
    if chromatic.mean() < 0.15:
        if value > 150:
            return "white"
        if value < 80:
            return "black"
    return None


def fits_colour(text: str, kind: str, colour: str | None) -> bool:
    """Whether a plate of format `kind` may have this background colour (unknown: yes)."""
    if colour is None:
        return True
    if kind not in COLOUR_FORMATS[colour]:
        return False
    if kind == "special":
        return _SPECIAL_COLOURS.get(text[-1], colour) == colour
    return True

"""Rendered Chinese licence plates (GA 36-2018 layouts), seen by a gate camera.

Colours and character counts as the standard lays them out: blue (white characters,
seven), yellow (black, seven; large vehicles also on two lines, the province and
authority letter above), green new-energy plates (black, eight: a white-to-green
gradient for small cars, yellow-green for large vehicles), white (police, the last
character red) and black (consulates, Hong Kong/Macao vehicles). The Chinese characters
come from `plate_glyphs.png`, drawn once from WenQuanYi Micro Hei (Apache-2.0) so that
no font is needed at run time; letters and digits use OpenCV's Hershey font.
Faults as for doors: tilt, blur, glare, dirt and sensor noise, all seeded.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
import numpy.typing as npt

#: A BGR 8-bit image.
Image = npt.NDArray[Any]

#: The characters of `plate_glyphs.png`, one 64 × 64 cell each, in this order.
GLYPHS = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼学警挂领试超港澳使"
_CELL = 64

Colour = Literal["blue", "yellow", "green", "green_large", "white", "black"]

#: Background (top, bottom for a gradient) and character colour, BGR.
_COLOURS: dict[str, tuple[tuple[int, int, int], tuple[int, int, int], tuple[int, int, int]]] = {
    "blue": ((170, 70, 0), (170, 70, 0), (250, 250, 250)),
    "yellow": ((0, 200, 250), (0, 190, 240), (20, 20, 20)),
    "green": ((235, 250, 235), (110, 200, 60), (20, 20, 20)),
    "green_large": ((40, 215, 225), (80, 200, 90), (20, 20, 20)),
    "white": ((245, 245, 245), (235, 235, 235), (20, 20, 20)),
    "black": ((20, 20, 20), (25, 25, 25), (250, 250, 250)),
}


@dataclass(frozen=True)
class PlateScene:
    """What to draw: the plate text (7 or 8 characters), its colour and the camera's faults."""

    text: str
    colour: Colour = "blue"
    two_line: bool = False
    width: int = 640
    height: int = 360
    plate_width: float = 0.45  # of the frame's width
    tilt: float = 0.03
    blur: float = 0.8
    glare: float = 0.0
    dirt: float = 0.0
    seed: int = 0


@functools.cache
def _atlas() -> Image:
    path = Path(__file__).with_name("plate_glyphs.png")
    atlas = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if atlas is None:
        raise FileNotFoundError(f"glyph atlas missing: {path}")
    out: Image = atlas
    return out


def _glyph(ch: str, width: int, height: int) -> Image:
    """The character's ink as a float mask (0–1) of `width` × `height` pixels."""
    if ch in GLYPHS:
        i = GLYPHS.index(ch)
        cell = _atlas()[:, i * _CELL : (i + 1) * _CELL]
        ys, xs = np.nonzero(cell > 40)
        cell = cell[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    else:
        font = cv2.FONT_HERSHEY_SIMPLEX
        (tw, th), base = cv2.getTextSize(ch, font, 3.0, 9)
        cell = np.zeros((th + base + 20, tw + 20), np.uint8)
        cv2.putText(cell, ch, (10, th + 10), font, 3.0, 255, 9, cv2.LINE_AA)
        ys, xs = np.nonzero(cell > 40)
        cell = cell[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    # Narrow characters (1, I) keep their width; the others fill the cell.
    gh, gw = cell.shape
    target_w = min(width, max(2, round(gw * height / gh))) if gw < 0.45 * gh else width
    glyph = cv2.resize(cell, (target_w, height), interpolation=cv2.INTER_AREA)
    mask = np.zeros((height, width), np.float32)
    x = (width - target_w) // 2
    mask[:, x : x + target_w] = glyph.astype(np.float32) / 255.0
    return mask


def _draw(plate: Image, text: str, box: tuple[int, int, int, int], ink: Image, gap: float) -> None:
    """`text` in equal cells across `box` (x0, y0, x1, y1), `gap` × cell width apart."""
    x0, y0, x1, y1 = box
    n = len(text)
    cell_w = (x1 - x0) / (n + gap * (n - 1))
    for i, ch in enumerate(text):
        cx = round(x0 + i * cell_w * (1 + gap))
        w = max(2, round(cell_w))
        mask = _glyph(ch, w, y1 - y0)[..., None]
        region = plate[y0:y1, cx : cx + w].astype(np.float32)
        colour = np.asarray(ink, np.float32)
        if ch == "警":
            colour = np.array([30, 30, 220], np.float32)  # red, as police plates print it
        region = region * (1 - mask[:, : region.shape[1]]) + colour * mask[:, : region.shape[1]]
        plate[y0:y1, cx : cx + region.shape[1]] = region.astype(np.uint8)


def render_plate_face(scene: PlateScene, width: int) -> Image:
    """The plate itself, face on, `width` pixels wide (440 × 140 mm, 480 for eight characters)."""
    top, bottom, ink = _COLOURS[scene.colour]
    ratio = 140 / (480 if len(scene.text) == 8 else 440)
    if scene.two_line:
        ratio = 220 / 440
    height = max(16, round(width * ratio))
    grad = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    plate = (
        np.asarray(top, np.float32) * (1 - grad) + np.asarray(bottom, np.float32) * grad
    ).astype(np.uint8)
    plate = np.repeat(plate, width, axis=1)
    border = (200, 200, 200) if scene.colour in ("blue", "black") else (30, 30, 30)
    cv2.rectangle(plate, (2, 2), (width - 3, height - 3), border, max(1, width // 150))
    ink_colour = np.asarray(ink, np.uint8)
    m = round(width * 0.045)
    if scene.two_line:
        upper, lower = scene.text[:2], scene.text[2:]
        _draw(
            plate,
            upper,
            (round(width * 0.3), m, round(width * 0.7), round(height * 0.38)),
            ink_colour,
            0.35,
        )
        _draw(plate, lower, (m, round(height * 0.45), width - m, height - m), ink_colour, 0.2)
    else:
        _draw(
            plate,
            scene.text,
            (m, round(height * 0.16), width - m, round(height * 0.84)),
            ink_colour,
            0.18,
        )
    return plate


def render_plate(scene: PlateScene) -> Image:
    """A vehicle's front with its plate, as a gate's plate camera sees it."""
    rng = np.random.default_rng(scene.seed)
    w, h = scene.width, scene.height
    body = tuple(int(c) for c in rng.integers(40, 200, size=3))
    img: Image = np.zeros((h, w, 3), np.uint8)
    img[:] = body
    # A radiator grille above the plate: horizontal slats.
    for y in range(int(h * 0.12), int(h * 0.5), max(6, h // 30)):
        cv2.rectangle(
            img, (int(w * 0.15), y), (int(w * 0.85), y + max(2, h // 90)), (35, 35, 35), -1
        )
    plate = render_plate_face(scene, round(w * scene.plate_width))
    ph, pw = plate.shape[:2]
    x0, y0 = (w - pw) // 2, min(h - ph - 2, int(h * 0.58))
    img[y0 : y0 + ph, x0 : x0 + pw] = plate
    for _ in range(int(300 * scene.dirt)):
        px, py = int(rng.integers(0, w)), int(rng.integers(0, h))
        cv2.circle(img, (px, py), int(rng.integers(1, 3)), (40, 40, 40), -1)
    if scene.glare > 0:
        spot: Image = np.zeros((h, w), np.float32)
        cv2.circle(spot, (x0 + int(pw * 0.7), y0 + ph // 2), int(ph * 0.6), 1.0, -1)
        spot = cv2.GaussianBlur(spot, (0, 0), ph * 0.3)
        bright = np.clip(spot * 255 * scene.glare, 0, 255).astype(np.uint8)
        img = cv2.add(img, cv2.cvtColor(bright, cv2.COLOR_GRAY2BGR))
    if scene.tilt:
        d = scene.tilt * w
        src = np.array([[0, 0], [w, 0], [w, h], [0, h]], dtype=np.float32)
        dst = np.array([[d, 0], [w, d * 0.4], [w - d * 0.3, h], [0, h - d * 0.2]], np.float32)
        img = cv2.warpPerspective(
            img, cv2.getPerspectiveTransform(src, dst), (w, h), borderMode=cv2.BORDER_REPLICATE
        )
    if scene.blur > 0:
        img = cv2.GaussianBlur(img, (0, 0), scene.blur)
    noise = rng.standard_normal(img.shape, dtype=np.float32) * 4.0
    out: Image = np.clip(img + noise, 0, 255).astype(np.uint8)
    return out


def draw_atlas(font: Path) -> Image:
    """The glyph atlas as `plate_glyphs.png` holds it, drawn from a CJK font file.

    Made once with WenQuanYi Micro Hei (`wqy-microhei.ttc`, Apache-2.0):
    ``cv2.imwrite("plate_glyphs.png", draw_atlas(Path(".../wqy-microhei.ttc")))``.
    """
    from PIL import Image as PilImage  # a gate dependency; only needed to redraw the atlas
    from PIL import ImageDraw, ImageFont

    face = ImageFont.truetype(str(font), 60)
    atlas = PilImage.new("L", (_CELL * len(GLYPHS), _CELL), 0)
    draw = ImageDraw.Draw(atlas)
    for i, ch in enumerate(GLYPHS):
        x0, y0, x1, y1 = draw.textbbox((0, 0), ch, font=face)
        origin = (i * _CELL + (_CELL - (x1 - x0)) // 2 - x0, (_CELL - (y1 - y0)) // 2 - y0)
        draw.text(origin, ch, fill=255, font=face)
    out: Image = np.asarray(atlas, dtype=np.uint8)
    return out

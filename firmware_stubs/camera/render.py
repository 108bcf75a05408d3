"""Rendered container doors: number, check digit box and size/type code, with camera faults.

Drawn with OpenCV's Hershey fonts (no font files). Layouts: the number on one line
(owner code, serial, check digit in a box), on two lines (owner code above the serial)
or stacked vertically on a corner post. Faults: perspective tilt, an oblique view (the
door seen from the side, its far edge smaller), a distant door (small text), blur,
glare (a bright blob) and dirt (dark specks), all seeded for repeatability.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import cv2
import numpy as np
import numpy.typing as npt

#: A BGR (or grey) 8-bit image as OpenCV returns it.
Image = npt.NDArray[Any]

_GLARE_SHRINK = 8
_YARD = (70, 75, 80)
_DOOR_COLOURS = [(60, 40, 150), (130, 70, 30), (40, 110, 40), (50, 50, 60), (30, 90, 170)]


@dataclass(frozen=True)
class Scene:
    """What to draw. `number` is eleven characters; `iso_type` four or empty."""

    number: str
    iso_type: str = "22G1"
    width: int = 1920
    height: int = 1080
    tilt: float = 0.04
    blur: float = 1.0
    glare: float = 0.3
    dirt: float = 0.3
    seed: int = 0
    #: "line": owner code, serial and check digit on one line; "two_line": the owner
    #: code above the serial; "vertical": the characters stacked on a corner post.
    layout: Literal["line", "two_line", "vertical"] = "line"
    #: The check digit framed by a box (as most doors paint it) or plain.
    boxed_check: bool = True
    #: 0 the door seen face on; up to about 0.5 seen from the side (far edge smaller).
    oblique: float = 0.0
    #: The door turned about its vertical axis by this many degrees (positive: its right
    #: edge farther away) and seen by a pinhole camera `distance` door widths from its
    #: centre: a true perspective view, both foreshortened and converging.
    yaw: float = 0.0
    distance: float = 1.2
    #: Text size relative to a door filling the frame (below 1: a distant door).
    text_scale: float = 1.0
    #: The check digit's distance from the serial, its frame's margin and the frame's
    #: stroke, in character heights (doors differ: some frames nearly touch the digit).
    check_gap: float = 0.5
    box_pad: float = 0.25
    box_stroke: float = 0.0  # 0: half the text's stroke


def _text(
    img: Image, text: str, org: tuple[int, int], scale: float, thickness: int
) -> tuple[int, int]:
    font = cv2.FONT_HERSHEY_DUPLEX
    cv2.putText(img, text, org, font, scale, (245, 245, 245), thickness, cv2.LINE_AA)
    (w, h), _ = cv2.getTextSize(text, font, scale, thickness)
    return w, h


def render_door(scene: Scene) -> Image:
    """A container door seen by a gate camera."""
    rng = np.random.default_rng(scene.seed)
    w, h = scene.width, scene.height
    colour = _DOOR_COLOURS[scene.seed % len(_DOOR_COLOURS)]
    img: Image = np.zeros((h, w, 3), dtype=np.uint8)
    img[:] = colour
    # Corrugation: vertical bands of lighter and darker paint.
    for x in range(0, w, max(8, w // 40)):
        shade = 25 if (x // max(8, w // 40)) % 2 else -25
        band = np.clip(np.array(colour, dtype=np.int16) + shade, 0, 255).astype(np.uint8)
        cv2.rectangle(img, (x, 0), (x + max(4, w // 80), h), tuple(int(c) for c in band), -1)
    scale = h / 260 * scene.text_scale
    thick = max(2, int(scale * 2.2))
    if scene.layout == "vertical":
        _column(img, scene, scale * 0.55, max(2, int(scale * 1.3)))
    else:
        _lines(img, scene, scale, thick)
    # Dirt: dark specks.
    for _ in range(int(400 * scene.dirt)):
        px, py = int(rng.integers(0, w)), int(rng.integers(0, h))
        cv2.circle(img, (px, py), int(rng.integers(1, 4)), (30, 30, 30), -1)
    # Glare: a soft bright blob away from the text centre. Drawn and blurred at an
    # eighth of the size, then scaled up: the same smooth blob, and a blur of a
    # 1080p frame with this sigma alone took seconds.
    if scene.glare > 0:
        sw, sh = max(1, w // _GLARE_SHRINK), max(1, h // _GLARE_SHRINK)
        glare: npt.NDArray[Any] = np.zeros((sh, sw), dtype=np.float32)
        cv2.circle(glare, (int(sw * 0.8), int(sh * 0.2)), int(sh * 0.25), 1.0, -1)
        glare = cv2.GaussianBlur(glare, (0, 0), sh * 0.08)
        glare = cv2.resize(glare * (255 * scene.glare), (w, h), interpolation=cv2.INTER_LINEAR)
        bright = cv2.cvtColor(np.clip(glare, 0, 255).astype(np.uint8), cv2.COLOR_GRAY2BGR)
        img = cv2.add(img, bright)  # saturating: 8-bit arithmetic, no float copy
    # Perspective: the camera looks at the door slightly from the side.
    if scene.tilt:
        d = scene.tilt * w
        src = np.array([[0, 0], [w, 0], [w, h], [0, h]], dtype=np.float32)
        dst = np.array(
            [[d, d * 0.3], [w - d * 0.2, 0], [w, h], [d * 0.5, h - d * 0.3]], dtype=np.float32
        )
        img = cv2.warpPerspective(
            img, cv2.getPerspectiveTransform(src, dst), (w, h), borderMode=cv2.BORDER_REPLICATE
        )
    if scene.oblique:
        img = _oblique(img, scene.oblique)
    if scene.yaw:
        img = _yawed(img, scene.yaw, scene.distance)
    if scene.blur > 0:
        img = cv2.GaussianBlur(img, (0, 0), scene.blur)
    noise = rng.standard_normal(img.shape, dtype=np.float32) * 4.0
    out: Image = np.clip(img + noise, 0, 255).astype(np.uint8)
    return out


def _lines(img: Image, scene: Scene, scale: float, thick: int) -> None:
    """The number on one line, or the owner code above the serial (`two_line`)."""
    h, w = img.shape[:2]
    owner, serial, check = scene.number[:4], scene.number[4:10], scene.number[10:]
    x0, y0 = int(w * 0.18), int(h * 0.35)
    ow, oh = _text(img, owner, (x0, y0), scale, thick)
    # Owner code and serial are painted a character apart: closer, the text detector
    # sees one word and cuts it inside the serial ("TGHU8" + "864395").
    (digit_w, _), _ = cv2.getTextSize("0", cv2.FONT_HERSHEY_DUPLEX, scale, thick)
    if scene.layout == "two_line":
        sx, sy = x0, y0 + int(oh * 1.7)
    else:
        sx, sy = x0 + ow + max(int(oh * 0.6), digit_w), y0
    sw, _ = _text(img, serial, (sx, sy), scale, thick)
    cx = sx + sw + int(oh * scene.check_gap)
    cw, _ = _text(img, check, (cx, sy), scale, thick)
    if scene.boxed_check:
        pad = int(oh * scene.box_pad)
        stroke = round(oh * scene.box_stroke) if scene.box_stroke else max(2, thick // 2)
        cv2.rectangle(
            img, (cx - pad, sy - oh - pad), (cx + cw + pad, sy + pad), (245, 245, 245), stroke
        )
    if scene.iso_type:
        _text(img, scene.iso_type, (sx, sy + int(oh * 2.0)), scale * 0.9, thick)


def _column(img: Image, scene: Scene, scale: float, thick: int) -> None:
    """The number stacked on a corner post, one upright character under the other."""
    h, w = img.shape[:2]
    font = cv2.FONT_HERSHEY_DUPLEX
    (cw, ch), _ = cv2.getTextSize("W", font, scale, thick)
    post_x = int(w * 0.78)
    cv2.rectangle(img, (post_x - cw, 0), (post_x + 2 * cw, h), (70, 70, 75), -1)
    pitch = int(ch * 1.45)
    y = int(h * 0.5 - pitch * 5.5) + ch
    for i, letter in enumerate(scene.number):
        (lw, _), _ = cv2.getTextSize(letter, font, scale, thick)
        x = post_x + (cw - lw) // 2
        # The check digit follows after a wider gap, framed when boxed.
        if i == 10:
            y += pitch // 3
        cv2.putText(img, letter, (x, y), font, scale, (245, 245, 245), thick, cv2.LINE_AA)
        if i == 10 and scene.boxed_check:
            pad = max(3, ch // 4)
            cv2.rectangle(img, (x - pad, y - ch - pad), (x + lw + pad, y + pad), (245, 245, 245), 2)
        y += pitch


def yaw_corners(
    width: int, height: int, degrees: float, distance: float
) -> npt.NDArray[np.float32]:
    """Where a door's corners (tl, tr, br, bl) fall in a frame of the same size when it is
    turned by `degrees` about its vertical axis and seen by a pinhole camera `distance`
    door widths away, the view scaled to fill the frame's height or width.

    Door point (X, Y, 0), centred; turned: (X cos a, Y, X sin a); projected with focal
    length equal to the distance: u = f X cos a / (f + X sin a), v = f Y / (f + X sin a).
    """
    a = np.radians(degrees)
    f = distance * width
    corners = np.array(
        [
            [-width / 2, -height / 2],
            [width / 2, -height / 2],
            [width / 2, height / 2],
            [-width / 2, height / 2],
        ],
        dtype=np.float64,
    )
    depth = f + corners[:, 0] * np.sin(a)
    u = f * corners[:, 0] * np.cos(a) / depth
    v = f * corners[:, 1] / depth
    fit = min(width / (u.max() - u.min()), height / (v.max() - v.min()))
    u = (u - (u.max() + u.min()) / 2) * fit + width / 2
    v = v * fit + height / 2
    return np.stack([u, v], axis=1).astype(np.float32)


def _yawed(img: Image, degrees: float, distance: float) -> Image:
    """`img` (a door filling the frame) turned about its vertical axis (`yaw_corners`);
    beside the door, the dim yard behind it."""
    h, w = img.shape[:2]
    src = np.array([[0, 0], [w, 0], [w, h], [0, h]], dtype=np.float32)
    dst = yaw_corners(w, h, degrees, distance)
    out: Image = cv2.warpPerspective(
        img,
        cv2.getPerspectiveTransform(src, dst),
        (w, h),
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=_YARD,
    )
    return out


def _oblique(img: Image, amount: float) -> Image:
    """The door seen from its left: the right edge farther away, so smaller."""
    h, w = img.shape[:2]
    src = np.array([[0, 0], [w, 0], [w, h], [0, h]], dtype=np.float32)
    shrink = amount * 0.45 * h
    dst = np.array(
        [[0, 0], [w * (1 - 0.35 * amount), shrink], [w * (1 - 0.35 * amount), h - shrink], [0, h]],
        dtype=np.float32,
    )
    out: Image = cv2.warpPerspective(
        img, cv2.getPerspectiveTransform(src, dst), (w, h), borderMode=cv2.BORDER_REPLICATE
    )
    return out

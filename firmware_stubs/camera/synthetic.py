"""The synthetic test set: labelled container doors and plates drawn by the camera stub.

Deterministic from its seed (same seed, same pixels, same labels); nothing is read from
disk but the glyph atlas. It covers the layouts and faults real photos are short of,
one class at a time, so that a failing class shows by name:

containers — `boxed_check` (the check digit framed), `plain_check`, `two_line` (owner
code above the serial), `vertical` (a corner post), `oblique` (the door seen from the
side), `yawed` (the door turned 35–55° away, in true perspective: the far end of the
number much smaller, its lines converging), `distant` (small text), `glare`, `dirt`;
plates — `blue_7`, `yellow_7`, `yellow_two_line`, `green_8` (new-energy small car,
D/F after the authority letter), `green_large_8` (D/F at the end), `white_police`,
`black_hk_macao`, `black_consulate`, `yellow_coach`.

`python -m firmware_stubs.camera.synthetic OUT_DIR` writes the images and their labels.
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from devices.ocr import iso6346
from firmware_stubs.camera.plate import GLYPHS, PlateScene, render_plate
from firmware_stubs.camera.render import Scene, render_door

#: The seed the test suite and the accuracy report use.
DEFAULT_SEED = 18
#: Images per class.
PER_CLASS = 3
#: Images of the `yawed` class (drawn from their own generator, after the first
#: classes: adding them changed none of the other images).
YAWED = 6
#: Frame of a rendered door: 720p keeps the set quick to read; distant doors are small.
DOOR_SIZE = (1280, 720)

_PROVINCES = GLYPHS[:31]
_LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"  # no I, O: not used on plates
_SERIAL = _LETTERS + "0123456789"


@dataclass(frozen=True)
class Sample:
    """One labelled synthetic image; `draw()` renders it."""

    name: str
    kind: str  # "container" or "plate"
    label: str
    cls: str
    draw: Callable[[], npt.NDArray[Any]]


def _container_number(rng: np.random.Generator) -> str:
    owner = "".join(rng.choice(list("ABCDEFGHIJKLMNOPQRSTUVWXYZ"), size=3)) + "U"
    serial = "".join(rng.choice(list("0123456789"), size=6))
    return iso6346.with_check_digit(owner + serial)


def _door_scenes(rng: np.random.Generator) -> Iterator[tuple[str, Scene]]:
    w, h = DOOR_SIZE
    classes: dict[str, dict[str, Any]] = {
        # Frames with heavy strokes close to the digit, near or far from the serial
        # (drawn per image below).
        "boxed_check": {},
        "plain_check": {"boxed_check": False},
        "two_line": {"layout": "two_line"},
        "vertical": {"layout": "vertical", "tilt": 0.0},
        "oblique": {"oblique": 0.6, "tilt": 0.0},
        "distant": {"text_scale": 0.4},
        "glare": {"glare": 0.9},
        "dirt": {"dirt": 1.6},
    }
    for cls, extra in classes.items():
        for i in range(PER_CLASS):
            seed = int(rng.integers(0, 2**31))
            iso_type = str(rng.choice(["22G1", "45G1", "42G1", "22R1"]))
            if cls == "boxed_check":
                extra = {
                    "check_gap": (0.3, 0.9, 1.3)[i % 3],
                    "box_pad": float(rng.uniform(0.05, 0.15)),
                    "box_stroke": float(rng.uniform(0.1, 0.2)),
                }
            number = _container_number(rng)
            yield cls, Scene(number, iso_type, width=w, height=h, seed=seed, **extra)


def _yawed_scenes(rng: np.random.Generator) -> Iterator[tuple[str, Scene]]:
    """Doors turned 35–55° about their vertical axis, either way, seen from 0.6 to 1.0
    door widths: the check digit at the far end of the line down to half the owner
    code's height."""
    w, h = DOOR_SIZE
    for _ in range(YAWED):
        seed = int(rng.integers(0, 2**31))
        iso_type = str(rng.choice(["22G1", "45G1", "42G1", "22R1"]))
        yaw = float(rng.uniform(35.0, 55.0)) * float(rng.choice([-1.0, 1.0]))
        distance = float(rng.uniform(0.6, 1.0))
        number = _container_number(rng)
        yield (
            "yawed",
            Scene(
                number, iso_type, width=w, height=h, seed=seed, tilt=0.0, yaw=yaw, distance=distance
            ),
        )


def _plate(rng: np.random.Generator, fmt: str) -> str:
    def pick(chars: str, n: int) -> str:
        return "".join(rng.choice(list(chars), size=n))

    province = pick(_PROVINCES, 1)
    authority = pick(_LETTERS, 1)
    digits = "0123456789"
    if fmt == "ordinary":
        serial = pick(digits, 3) + pick(_SERIAL, 2)
        order = rng.permutation(5)
        return province + authority + "".join(serial[j] for j in order)
    if fmt == "new_energy_small":
        return province + authority + pick("DF", 1) + pick(_SERIAL, 1) + pick(digits, 4)
    if fmt == "new_energy_large":
        return province + authority + pick(digits, 5) + pick("DF", 1)
    if fmt in ("警", "学", "领"):
        return province + authority + pick(digits, 4) + fmt
    if fmt == "hk_macao":
        return "粤Z" + pick(digits, 4) + pick("港澳", 1)
    raise ValueError(fmt)


def _plate_scenes(rng: np.random.Generator) -> Iterator[tuple[str, PlateScene]]:
    classes: dict[str, tuple[str, dict[str, Any]]] = {
        "blue_7": ("ordinary", {"colour": "blue"}),
        "yellow_7": ("ordinary", {"colour": "yellow"}),
        "yellow_two_line": ("ordinary", {"colour": "yellow", "two_line": True}),
        "green_8": ("new_energy_small", {"colour": "green"}),
        "green_large_8": ("new_energy_large", {"colour": "green_large"}),
        "white_police": ("警", {"colour": "white"}),
        "black_hk_macao": ("hk_macao", {"colour": "black"}),
        "black_consulate": ("领", {"colour": "black"}),
        "yellow_coach": ("学", {"colour": "yellow"}),
    }
    for cls, (fmt, extra) in classes.items():
        for i in range(PER_CLASS):
            seed = int(rng.integers(0, 2**31))
            # One clean, one with glare, one dirty.
            extra = {**extra, "glare": 0.5 if i == 1 else 0.0, "dirt": 0.8 if i == 2 else 0.0}
            yield cls, PlateScene(_plate(rng, fmt), seed=seed, **extra)


def samples(seed: int = DEFAULT_SEED) -> list[Sample]:
    """Every sample of the set, containers first, in a fixed order."""
    rng = np.random.default_rng(seed)
    doors = list(_door_scenes(rng))
    plates = list(_plate_scenes(rng))
    doors += _yawed_scenes(np.random.default_rng([seed, 1]))
    out: list[Sample] = []
    for n, (cls, door) in enumerate(doors):
        out.append(
            Sample(f"door-{n:02d}-{cls}", "container", door.number, cls, _bind(render_door, door))
        )
    for n, (cls, plate) in enumerate(plates):
        out.append(
            Sample(f"plate-{n:02d}-{cls}", "plate", plate.text, cls, _bind(render_plate, plate))
        )
    return out


def _bind(
    render: Callable[[Any], npt.NDArray[Any]], scene: object
) -> Callable[[], npt.NDArray[Any]]:
    return lambda: render(scene)


def write(folder: Path, seed: int = DEFAULT_SEED) -> int:
    """The set as PNG files and `labels.csv` (file, kind, label, class) in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    items = samples(seed)
    with open(folder / "labels.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["file", "kind", "label", "class"])
        for item in items:
            cv2.imwrite(str(folder / f"{item.name}.png"), item.draw())
            writer.writerow([f"{item.name}.png", item.kind, item.label, item.cls])
    return len(items)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m firmware_stubs.camera.synthetic OUT_DIR")
    print(write(Path(sys.argv[1])), "images")

"""The failing classes of issue 18, each fixed in general: the boxed check digit (its frame
erased, the digit read with the serial), plates cut in pieces (two lines, a character
boxed apart) and the plate's format checked against its colour before its score counts."""

from typing import Any

import cv2
import numpy as np
import pytest

from devices.ocr.columns import find_columns
from devices.ocr.frames import erase_frames, frame_strokes
from devices.ocr.plates import COLOUR_FORMATS, fits_colour, plate_colour, plate_kind
from devices.ocr.reader import GateReader, load_image
from firmware_stubs.camera.plate import PlateScene, render_plate, render_plate_face
from firmware_stubs.camera.render import Scene, render_door
from tests.realdata import REPO_DATA


def _line_with_frame(framed: bool) -> np.ndarray[Any, Any]:
    """'230996' and a check digit 0, white on a door's blue, the 0 framed or not."""
    img = np.full((120, 520, 3), (150, 80, 30), np.uint8)
    font = cv2.FONT_HERSHEY_DUPLEX
    cv2.putText(img, "230996", (20, 85), font, 2.2, (245, 245, 245), 5, cv2.LINE_AA)
    cv2.putText(img, "0", (420, 85), font, 2.2, (245, 245, 245), 5, cv2.LINE_AA)
    if framed:
        cv2.rectangle(img, (405, 22), (480, 100), (245, 245, 245), 7)
    return img


def test_a_frame_is_found_and_erased_and_the_digits_are_kept():
    framed, plain = _line_with_frame(True), _line_with_frame(False)
    assert frame_strokes(plain) is None
    strokes = frame_strokes(framed)
    assert strokes is not None
    ys, xs = np.nonzero(strokes)
    assert xs.min() >= 395 and ys.min() <= 30 and ys.max() >= 92  # the frame, not the serial
    erased = erase_frames(framed)
    assert erased is not None
    # The frame's sides are gone: the columns where they were look like the paint.
    for x in (405, 480):
        assert erased[40:80, x - 1 : x + 2].mean() < framed[40:80, x - 1 : x + 2].mean() - 60
    # The serial is untouched.
    assert np.array_equal(erased[:, :380], framed[:, :380])


@pytest.mark.parametrize("seed", [1, 2])
def test_a_boxed_check_digit_apart_from_the_serial_is_read_and_confirms_the_number(seed):
    # A heavy frame more than a character from the serial: read without the frame's
    # erasure, the line gives the serial alone and the number goes to review.
    door = render_door(
        Scene(
            "FSWU2309960",
            width=1280,
            height=720,
            seed=seed,
            check_gap=1.2,
            box_pad=0.1,
            box_stroke=0.15,
        )
    )
    reading = GateReader().read(door)
    top = reading.containers[0]
    assert top.number == "FSWU2309960"
    assert top.check_digit_ok and not top.needs_review, top


@pytest.mark.parametrize(
    ("colour", "text"),
    [
        ("blue", "粤B12345"),
        ("yellow", "京A12345"),
        ("green", "粤BD12345"),
        ("white", "粤B1234警"),
        ("black", "粤Z1234港"),
    ],
)
def test_plate_colour_of_rendered_plates(colour, text):
    face = render_plate_face(PlateScene(text, colour), 300)
    assert plate_colour(face) == colour


def test_format_and_colour_rules_follow_ga36():
    assert fits_colour("粤BD12345", "new_energy_small", "green")
    assert fits_colour("粤B12345D", "new_energy_large", "yellow")
    assert not fits_colour("粤BD1234", "ordinary", "green")  # seven characters on green
    assert not fits_colour("粤BD12345", "new_energy_small", "blue")
    assert not fits_colour("粤B1234警", "special", "yellow")  # police plates are white
    assert fits_colour("粤B1234学", "special", "yellow")
    assert fits_colour("粤B12345", "ordinary", None)  # colour unknown: no rule
    assert plate_kind("粤BD1234") == "ordinary"  # why the colour must be checked
    assert set(COLOUR_FORMATS) == {"blue", "yellow", "green", "white", "black"}


def test_a_green_plate_read_with_seven_characters_is_never_confident():
    # The eighth character hidden (mud, a tow bar): what remains is a valid ordinary
    # plate, but not on green.
    scene = PlateScene("粤BD12345", "green", seed=3)
    image = render_plate(scene)
    face_w = round(scene.width * scene.plate_width)
    x_end = (scene.width + face_w) // 2
    cv2.rectangle(image, (x_end - face_w // 8, 150), (x_end + 5, 330), (60, 60, 60), -1)
    plate = GateReader().read(image).plate
    assert plate is not None and plate.text == "粤BD1234"  # a valid ordinary plate…
    assert plate.kind == "ordinary" and plate.doubtful and plate.needs_review, plate


def test_a_two_line_yellow_plate_is_joined():
    image = render_plate(PlateScene("京EA5331", "yellow", two_line=True, seed=4))
    plate = GateReader().read(image).plate
    assert plate is not None and plate.text == "京EA5331" and not plate.needs_review


def test_a_corner_post_number_the_detector_misses_is_found_from_its_characters():
    # TGHU8643952 stacked in thin strokes down a corner post, its check digit boxed
    # (tests/data/containers): the detector gives no box for it at any scale.
    name = next(p for p in (REPO_DATA / "containers").iterdir() if "cfcffbda" in p.name)
    image = load_image(str(name))
    columns = find_columns(cv2.resize(image, None, fx=1.5, fy=1.5))
    assert columns and all(box.height > 5 * box.width for box, _ in columns[:1])
    top = GateReader().read(image).containers[0]
    assert top.number == "TGHU8643952" and top.check_digit_ok and not top.needs_review


def test_no_column_in_a_plain_door():
    door = render_door(Scene("CSQU3054383", seed=2, layout="line"))
    assert find_columns(door) == []

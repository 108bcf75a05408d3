"""Doors seen obliquely: the text line's perspective found from its ink and undone
(devices/ocr/rectify.py), and the reader's face-on second look."""

from typing import Any

import numpy as np
import pytest

from devices.ocr.engine import TextBox
from devices.ocr.rectify import MIN_CONVERGENCE, ink_edges, rectify
from devices.ocr.results import DEFAULT_REVIEW_THRESHOLD
from firmware_stubs.camera import synthetic
from firmware_stubs.camera.render import Scene, render_door

pytestmark = pytest.mark.timeout(300)

CLEAN: dict[str, Any] = {"tilt": 0.0, "glare": 0.0, "dirt": 0.0, "width": 1280, "height": 720}


def _number_line(reader, image) -> TextBox:
    """The detected line with the largest characters (the container number)."""
    lines = [b for b in reader.engine.detect(image) if b.width >= 2.5 * b.height]
    return max(lines, key=lambda b: min(b.width, b.height))


def test_a_door_seen_face_on_is_left_alone(reader):
    image = render_door(Scene("CSQU3054383", seed=3, **CLEAN))
    assert rectify(image, _number_line(reader, image)) is None


def test_a_turned_doors_line_is_levelled(reader):
    image = render_door(Scene("CSQU3054383", seed=3, yaw=50.0, distance=0.7, **CLEAN))
    line = _number_line(reader, image)
    edges = ink_edges(image, line)
    assert edges is not None
    top, bottom = edges
    # Converging: the near (left) end taller than the far end.
    assert bottom[0] < top[0]
    view = rectify(image, line)
    assert view is not None
    assert view.convergence > 1.3
    again = _number_line(reader, view.image)
    edges = ink_edges(view.image, again)
    assert edges is not None
    top, bottom = edges
    assert abs(top[0] - bottom[0]) < 0.02
    assert abs(top[0]) < 0.03
    assert rectify(view.image, again) is None  # nothing left to undo
    # A box of the view maps back onto the line in the frame.
    x0, _, x1, y1 = view.to_frame((0.0, 0.0, float(view.image.shape[1]), 1.0))
    lx0, _, lx1, ly1 = line.bounds
    assert x0 < lx0 and x1 > lx1 and y1 < ly1


def test_no_ink_no_rectification():
    blank = np.full((200, 400, 3), 90, dtype=np.uint8)
    box = TextBox(np.array([[50, 80], [350, 80], [350, 120], [50, 120]], dtype=np.float32))
    assert rectify(blank, box) is None
    tiny = TextBox(np.array([[5, 5], [12, 5], [12, 9], [5, 9]], dtype=np.float32))
    assert ink_edges(blank, tiny) is None
    assert MIN_CONVERGENCE > 1.0


def test_turned_doors_are_read_exactly_and_confidently(synthetic_readings):
    """The `yawed` synthetic doors (35–55°, close by): each read exactly, above the
    review threshold."""
    yawed = [r for r in synthetic_readings if r.source == "yawed"]
    assert len(yawed) == synthetic.YAWED
    for r in yawed:
        assert r.read == r.expected, r
        assert not r.needs_review(DEFAULT_REVIEW_THRESHOLD), r


def test_a_face_on_reading_gives_its_box_in_the_frames_pixels(reader):
    """door-24: the check digit at the far end, read only face on; its box is mapped
    back onto the number in the frame."""
    sample = next(s for s in synthetic.samples() if s.name == "door-24-yawed")
    image = sample.draw()
    top = reader.read(image).containers[0]
    assert (top.number, top.needs_review) == (sample.label, False)
    assert top.box is not None
    x0, y0, x1, y1 = top.box
    lx0, ly0, lx1, ly1 = _number_line(reader, image).bounds
    assert 0 <= x0 < x1 <= image.shape[1] and 0 <= y0 < y1 <= image.shape[0]
    overlap_x = min(x1, lx1) - max(x0, lx0)
    overlap_y = min(y1, ly1) - max(y0, ly0)
    assert overlap_x > 0.5 * (lx1 - lx0) and overlap_y > 0.3 * (ly1 - ly0)

"""Speed measures that must not change what is read: scaled detection, staged recognition."""

import cv2
import numpy as np

from devices.ocr.engine import Image, OcrEngine, TextBox
from devices.ocr.reader import GateReader, ReaderConfig, _grow_column, _stages
from firmware_stubs.camera.plate import PlateScene, render_plate_face
from firmware_stubs.camera.render import Scene, render_door


def _box(x0: float, y0: float, x1: float, y1: float) -> TextBox:
    return TextBox(np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float32))


class CountingEngine:
    """The real engine, counting the line images it is asked to recognise."""

    def __init__(self, engine: OcrEngine) -> None:
        self.engine = engine
        self.recognised = 0
        self.sides: list[int] = []

    def detect(self, image: Image, max_side: int = 1440) -> list[TextBox]:
        self.sides.append(max_side)
        return self.engine.detect(image, max_side)

    def recognise(self, crops: list[Image]) -> list[tuple[str, float]]:
        self.recognised += len(crops)
        return self.engine.recognise(crops)


def test_stages_take_the_largest_characters_first():
    small = [_box(0, 100 + 30 * i, 200, 120 + 30 * i) for i in range(5)]  # 20 px lines
    big_line = _box(0, 0, 600, 60)  # 60 px characters
    column = _box(700, 0, 750, 600)  # a column 50 px wide
    first, second, rest = _stages([*small, column, big_line], 2)
    assert first == [big_line, column]
    assert second + rest == small and len(second) == 2


def test_grown_column_follows_a_slanted_column():
    # A column leaning right by 10 px over 400 px, 30 px wide, holding 10 of 11 characters.
    box = TextBox(np.array([[120, 100], [150, 100], [140, 500], [110, 500]], dtype=np.float32))
    grown = _grow_column(box, 10, (2000, 2000))
    top_left, _top_right, _bottom_right, bottom_left = grown.points
    pitch = 400 / 10 * 1.1
    assert top_left[1] < 100 - 0.9 * pitch
    assert bottom_left[1] > 500 + 0.9 * pitch
    # Still leaning: the top edge is further right than the bottom edge.
    assert top_left[0] > bottom_left[0] + 10
    # Sideways: a quarter of the width each side, not the whole bounding rectangle.
    assert 40 < grown.width < 50


def test_grown_column_stays_inside_the_image():
    box = _box(10, 5, 40, 300)
    grown = _grow_column(box, 6, (320, 200))
    assert grown.points[:, 0].min() >= 0 and grown.points[:, 1].min() >= 0
    assert grown.points[:, 1].max() <= 319


def test_detection_on_a_scaled_frame_gives_boxes_in_frame_pixels(reader):
    frame = render_door(Scene("CSQU3054383", seed=2))
    full = reader.engine.detect(frame, 2048)
    scaled = reader.engine.detect(frame, 960)
    assert full and scaled

    # The text is found at the same place either way (the boxes may split differently):
    # every box found on the scaled frame lies on text found at full resolution.
    for box in scaled:
        cx, cy = box.center
        assert any(
            b.bounds[0] - 10 <= cx <= b.bounds[2] + 10
            and b.bounds[1] - 10 <= cy <= b.bounds[3] + 10
            for b in full
        ), box
    assert max(b.bounds[2] for b in scaled) > 960  # in frame pixels, not the detector's


def _door_with_labels() -> Image:
    """A rendered door with the small print of a real one (weights, capacity)."""
    frame = render_door(Scene("CSQU3054383", iso_type="45G1", seed=1, glare=0.0))
    labels = ["MAX GROSS 30480 KG", "TARE 2200 KG", "NET 28280 KG", "CU CAP 33.2 CU M"]
    for i, text in enumerate(labels):
        cv2.putText(frame, text, (1350, 650 + 70 * i), cv2.FONT_HERSHEY_SIMPLEX, 1.2, (250,) * 3, 3)
    return frame


def test_a_confident_number_in_the_first_boxes_stops_recognition(reader):
    frame = _door_with_labels()
    staged = CountingEngine(reader.engine)
    full = CountingEngine(reader.engine)
    config = {"read_plates": False}
    quick = GateReader(ReaderConfig(first_boxes=4, **config), engine=staged).read(frame)  # type: ignore[arg-type]
    whole = GateReader(ReaderConfig(first_boxes=1000, **config), engine=full).read(frame)  # type: ignore[arg-type]
    assert [c.number for c in quick.containers][:1] == [c.number for c in whole.containers][:1]
    assert quick.containers[0].number == "CSQU3054383"
    assert not quick.containers[0].needs_review
    assert staged.recognised < full.recognised
    assert staged.sides == [ReaderConfig().detect_side]


def test_when_plates_are_wanted_and_none_is_seen_only_plate_like_boxes_are_read(reader):
    frame = _door_with_labels()
    staged = CountingEngine(reader.engine)
    full = CountingEngine(reader.engine)
    quick = GateReader(ReaderConfig(first_boxes=4), engine=staged).read(frame)  # type: ignore[arg-type]
    whole = GateReader(ReaderConfig(first_boxes=1000), engine=full).read(frame)  # type: ignore[arg-type]
    assert quick.plate is None and whole.plate is None
    assert quick.containers[0].number == whole.containers[0].number == "CSQU3054383"
    assert staged.recognised < full.recognised


def test_a_plate_among_the_small_print_is_still_found(reader):
    frame = _door_with_labels()
    plate = render_plate_face(PlateScene("粤B12345", "blue"), 300)
    frame[950 : 950 + plate.shape[0], 200 : 200 + plate.shape[1]] = plate
    quick = GateReader(ReaderConfig(first_boxes=4)).read(frame)
    assert quick.containers[0].number == "CSQU3054383"
    assert quick.plate is not None and quick.plate.text == "粤B12345"

"""The OCR engine's own onnxruntime sessions, and reading each check-digit region once."""

import cv2
import numpy as np

from devices.ocr.containers import Candidate
from devices.ocr.engine import REC_MIN_WIDTH, Image, OcrEngine, TextBox, session_options
from devices.ocr.reader import GateReader, _check_rect


def _box(x0: float, y0: float, x1: float, y1: float) -> TextBox:
    return TextBox(np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float32))


def _line(text: str, height: int = 60, scale: float = 1.6) -> Image:
    """Black text on white, cut tight around it with a small margin."""
    (width, _), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 3)
    image = np.full((height, width + 20, 3), 255, dtype=np.uint8)
    cv2.putText(
        image, text, (10, height - 15), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 3, cv2.LINE_AA
    )
    return image


class CountingEngine:
    """The real engine, keeping the line images it is asked to recognise."""

    def __init__(self, engine: OcrEngine) -> None:
        self.engine = engine
        self.crops: list[Image] = []

    def detect(self, image: Image, max_side: int = 1440) -> list[TextBox]:
        return self.engine.detect(image, max_side)

    def recognise(self, crops: list[Image]) -> list[tuple[str, float]]:
        self.crops.extend(crops)
        return self.engine.recognise(crops)


def test_session_options_keep_the_memory_arena_and_threads():
    options = session_options(2)
    assert options.enable_cpu_mem_arena  # rapidocr turns it off; detection is ~30 % faster on
    assert options.intra_op_num_threads == 2
    assert options.inter_op_num_threads == 1
    assert session_options(-1).intra_op_num_threads == 0  # onnxruntime's default: one per core


def test_a_line_reads_the_same_whatever_it_is_read_with(reader):
    short = _line("4552")
    wide = _line("MAX GROSS 30480 KG 67200 LB", scale=1.4)
    assert 48 * wide.shape[1] / wide.shape[0] > 1.5 * REC_MIN_WIDTH  # would pad `short` in a batch
    alone = reader.engine.recognise([short])
    together = reader.engine.recognise([short, wide])
    assert alone[0] == together[0]
    assert alone[0][0] == "4552"
    assert "30480KG67200" in together[1][0].replace(" ", "")


def test_empty_and_blank_lines_read_as_nothing(reader):
    assert reader.engine.recognise([]) == []
    ((text, score),) = reader.engine.recognise([np.full((40, 200, 3), 255, dtype=np.uint8)])
    assert text.strip() == ""
    assert score <= 0.5


def test_each_check_digit_region_is_read_once_per_image(reader):
    # "305438 3": a serial and its check digit printed apart, on a white plate.
    image = np.full((200, 700, 3), 255, dtype=np.uint8)
    line = _line("305438  3", height=80, scale=2.4)
    image[60:140, 40 : 40 + line.shape[1]] = line
    (serial_w, _), _ = cv2.getTextSize("305438", cv2.FONT_HERSHEY_SIMPLEX, 2.4, 3)
    serial = _box(45, 65, 50 + serial_w, 135)
    counting = CountingEngine(reader.engine)
    gate = GateReader(engine=counting)  # type: ignore[arg-type]
    cand = Candidate("CSQU", "305438", None, 0.95, "owner+serial (line)", 70.0, serial, False)
    twin = Candidate("CSQU", "305438", None, 0.9, "one box", 70.0, serial, False)
    looks: dict[tuple[tuple[int, int, int, int], bool], tuple[str, float]] = {}
    found = gate._look_for_check_digits(image, [cand, twin], looks)
    assert [c.check for c in found] == ["3", "3"]
    assert len(counting.crops) == 1  # both candidates share one region
    again = gate._look_for_check_digits(image, [cand], looks)
    assert again[0].check == "3"
    assert len(counting.crops) == 1  # read again after the rest of the boxes: not re-read


def test_no_check_digit_look_where_no_line_can_be():
    # A tall box read sideways gives a "line" region taller than wide: nothing to look at.
    column = _box(500, 100, 560, 800)
    sideways = Candidate("TGHU", "864395", None, 0.9, "one box", column.height, column, False)
    assert _check_rect((1080, 1920, 3), sideways) is None
    line = _box(500, 100, 800, 150)
    level = Candidate("TGHU", "864395", None, 0.9, "one box", line.height, line, False)
    x0, y0, x1, y1 = _check_rect((1080, 1920, 3), level) or (0, 0, 0, 0)
    assert (x0, x1) == (500, 910) and y0 < 100 and y1 > 150
    off = _box(1900, 1070, 1919, 1079)
    corner = Candidate("TGHU", "864395", None, 0.9, "one box", 9.0, off, False)
    assert _check_rect((1080, 1920, 3), corner) is None

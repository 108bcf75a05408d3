"""Leave-one-source-out evaluation: what is fitted is fitted without the held-out source,
and one reading per image serves every fold (devices/ocr/accuracy.py)."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from devices.ocr.accuracy import (
    FIT_MARGIN,
    Reading,
    ReadingCache,
    Row,
    evaluate,
    fit_threshold,
    held_out,
    score,
)
from devices.ocr.results import DEFAULT_REVIEW_THRESHOLD, ImageReading


def reading(source: str, read: str, confidence: float, expected: str = "CSQU3054383", **kw):
    return Reading(
        file=f"{source}-{read}-{confidence}",
        kind=kw.pop("kind", "container"),
        source=source,
        expected=expected,
        readable=True,
        read=read,
        confidence=confidence,
        check_digit_ok=kw.pop("check_digit_ok", True),
        doubtful=kw.pop("doubtful", False),
    )


def test_threshold_is_the_designed_one_when_nothing_wrong_is_confident():
    rows = [reading("a", "CSQU3054383", 0.99), reading("b", "MSKU9070323", 0.7, doubtful=True)]
    assert fit_threshold(rows) == DEFAULT_REVIEW_THRESHOLD


def test_threshold_rises_above_the_most_confident_wrong_reading():
    rows = [reading("a", "CSQU3054383", 0.95), reading("b", "MSKU9070323", 0.9)]
    assert fit_threshold(rows) == pytest.approx(0.9 + FIT_MARGIN)
    judged = [Row(r, fit_threshold(rows)) for r in rows]
    assert [r.verdict for r in judged] == ["exact", "wrong (review)"]


@given(st.lists(st.tuples(st.booleans(), st.floats(0.0, 0.97)), min_size=1, max_size=30))
def test_no_wrong_reading_it_was_fitted_on_is_confident(cases):
    rows = [reading("s", "CSQU3054383" if right else "MSKU9070323", conf) for right, conf in cases]
    threshold = fit_threshold(rows)
    assert threshold >= DEFAULT_REVIEW_THRESHOLD
    assert not any(Row(r, threshold).verdict == "WRONG" for r in rows)


def test_each_fold_is_fitted_without_its_source():
    rows = [
        reading("a", "CSQU3054383", 0.95),
        reading("b", "MSKU9070323", 0.9),  # b's own confident mistake
        reading("c", "CSQU3054383", 0.93),
        reading("p", "粤B12345", 0.9, expected="粤B12345", kind="plate"),
    ]
    folds = {f.source: f for f in held_out(rows)}
    assert folds["b"].threshold == DEFAULT_REVIEW_THRESHOLD  # fitted on a, c, p only
    assert [r.verdict for r in folds["b"].rows] == ["WRONG"]  # so held out it is caught
    assert folds["a"].threshold == pytest.approx(0.9 + FIT_MARGIN)
    assert [r.verdict for r in folds["c"].rows] == ["exact"]
    assert {f.kind for f in folds.values()} == {"container", "plate"}
    report = evaluate(rows, [])
    assert score(report.held_out_rows("container")).wrong_confident == 1
    assert score(report.sample).wrong_confident == 0


class CountingReader:
    """A reader stand-in that counts reads (the cache is what is under test)."""

    def __init__(self) -> None:
        self.calls = 0
        from devices.ocr.reader import ReaderConfig

        self.config = ReaderConfig()

    def read(self, image) -> ImageReading:
        self.calls += 1
        return ImageReading()


def test_cache_reads_each_image_once_and_survives_a_restart(tmp_path):
    counting = CountingReader()
    path = tmp_path / "cache.json"
    cache = ReadingCache(counting, path)  # type: ignore[arg-type]
    image = np.zeros((20, 20, 3), np.uint8)
    for _ in range(3):
        cache.read(image.tobytes(), lambda: image)
    assert counting.calls == 1 and cache.reads == 1
    cache.save()
    again = ReadingCache(counting, path)  # type: ignore[arg-type]
    again.read(image.tobytes(), lambda: image)
    assert counting.calls == 1
    other = np.ones((20, 20, 3), np.uint8)
    again.read(other.tobytes(), lambda: other)
    assert counting.calls == 2


def test_a_damaged_cache_file_is_read_again_not_trusted(tmp_path):
    path = tmp_path / "cache.json"
    path.write_text("{not json", encoding="utf-8")
    counting = CountingReader()
    cache = ReadingCache(counting, path)  # type: ignore[arg-type]
    image = np.zeros((20, 20, 3), np.uint8)
    cache.read(image.tobytes(), lambda: image)
    assert counting.calls == 1

"""Accuracy on every labelled real photograph, read in place from `$BONDWATCH_DATA`
(default `../shared/data`): the accuracy suite, `make accuracy` (and CI).

Targets (issue 18): each source repository held out in turn, ≥ 95 % of readable container
numbers and ≥ 95 % of plates exact; never a wrong number or plate reported confident,
held out or in sample.
"""

import csv

import pytest

from devices.ocr import iso6346
from devices.ocr.accuracy import markdown, of_kind, score, text_table

# Reading all 108 photos takes about 3-6 minutes on two cores (the first test pays for it).
pytestmark = [pytest.mark.shared_data, pytest.mark.timeout(1500)]


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["container", "plate"])
def test_held_out_exact(shared_report, kind, capsys):
    with capsys.disabled():
        print("\n" + text_table(of_kind(shared_report.sample, kind)))
    rows = shared_report.held_out_rows(kind)
    assert len(rows) >= (70 if kind == "container" else 30)
    s = score(rows)
    assert s.exact_pct >= 95.0, f"{kind}: {s.exact}/{s.readable} read exactly, held out"


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["container", "plate"])
def test_no_wrong_reading_is_confident_held_out_or_in_sample(shared_report, kind):
    rows = shared_report.held_out_rows(kind) + of_kind(shared_report.sample, kind)
    wrong = [r for r in rows if r.verdict == "WRONG"]
    assert not wrong, wrong


@pytest.mark.slow
def test_size_type_codes_where_read_are_right(shared_report):
    read = [
        r.reading
        for r in of_kind(shared_report.sample, "container")
        if r.reading.iso_expected and r.reading.iso_read and r.reading.read == r.reading.expected
    ]
    assert len(read) >= 20
    right = [r for r in read if r.iso_read == r.iso_expected]
    assert len(right) >= 0.9 * len(read), [(r.file, r.iso_expected, r.iso_read) for r in read]


def test_labels_pass_the_check_digit(shared_data):
    with open(shared_data / "containers" / "labels.csv", encoding="utf-8") as fh:
        numbers = [row["container_number"] for row in csv.DictReader(fh)]
    assert len(numbers) >= 70
    assert all(iso6346.is_valid(n) for n in numbers)


@pytest.mark.slow
def test_markdown_has_every_row_and_the_held_out_headline(shared_report):
    text = markdown(shared_report)
    assert text.count("\n| ") >= len(shared_report.sample)
    assert "containers, held out" in text and "plates, held out" in text
    assert score(shared_report.sample).images == len(shared_report.photos)

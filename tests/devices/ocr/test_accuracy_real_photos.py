"""Accuracy on every labelled real photograph, read in place from `$BONDWATCH_DATA`
(default `../shared/data`): the accuracy suite, `make accuracy` (and CI).

Targets: ≥ 95 % of readable container numbers exact; never a wrong number with a
valid check digit above the review threshold; ≥ 90 % of plates exact.
"""

import csv

import pytest

from devices.ocr import iso6346

from devices.ocr.accuracy import markdown, summary, text_table

# Reading all 76 photos takes about 3-6 minutes on two cores (the first test pays for it).
pytestmark = [pytest.mark.shared_data, pytest.mark.timeout(1500)]


@pytest.mark.slow
def test_container_numbers(container_table, plate_table, capsys):
    with capsys.disabled():
        print("\n" + text_table(container_table, []))
    s = summary(container_table, plate_table)
    assert s["containers"] >= 70
    assert s["confident_wrong"] == 0, [r for r in container_table if r.verdict == "WRONG"]
    assert s["exact_pct"] >= 95.0, f"{s['exact']}/{s['readable']} read exactly"


@pytest.mark.slow
def test_no_wrong_number_is_confident(container_table):
    for row in container_table:
        if row.read and row.read != row.expected and row.check_digit_ok:
            assert row.needs_review, row


@pytest.mark.slow
def test_plates(container_table, plate_table, capsys):
    with capsys.disabled():
        print("\n" + text_table([], plate_table))
    s = summary(container_table, plate_table)
    assert s["plates"] >= 30
    assert s["plates_exact_pct"] >= 90.0, f"{s['plates_exact']}/{s['plates']} plates exact"


@pytest.mark.slow
def test_size_type_codes_where_read_are_right(container_table):
    read = [r for r in container_table if r.iso_expected and r.iso_read and r.read == r.expected]
    assert len(read) >= 20
    right = [r for r in read if r.iso_read == r.iso_expected]
    assert len(right) >= 0.9 * len(read), [(r.file, r.iso_expected, r.iso_read) for r in read]


def test_labels_pass_the_check_digit(shared_data):
    with open(shared_data / "containers" / "labels.csv", encoding="utf-8") as fh:
        numbers = [row["container_number"] for row in csv.DictReader(fh)]
    assert len(numbers) >= 70
    assert all(iso6346.is_valid(n) for n in numbers)


def test_markdown_table_has_every_row(container_table, plate_table):
    text = markdown(container_table, plate_table)
    assert text.count("\n| ") >= len(container_table) + len(plate_table)

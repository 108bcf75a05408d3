"""Accuracy on the real labelled photographs in /work/shared/data (read in place).

Targets: ≥ 95 % of readable container numbers exact; never a wrong number with a
valid check digit above the review threshold; ≥ 90 % of plates exact.
"""

import pytest

from devices.ocr.accuracy import markdown, summary, text_table

# Reading all 76 photos takes about 3-6 minutes on two cores (the first test pays for it).
pytestmark = pytest.mark.timeout(1500)


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


def test_markdown_table_has_every_row(container_table, plate_table):
    text = markdown(container_table, plate_table)
    assert text.count("\n| ") >= len(container_table) + len(plate_table)

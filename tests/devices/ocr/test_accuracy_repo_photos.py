"""Accuracy on the labelled photographs kept in the repository (tests/data): what a
fresh clone can check alone. The whole set, read in place, is the accuracy suite
(test_accuracy_real_photos.py, `make accuracy`).

Targets: never a wrong container number or plate reported confident; at least 90 % of
the readable container numbers and of the plates exact (the same plate target as the
whole set's; one vertical corner-post number of the 13, TGHU8643952, is not read yet).
"""

import pytest

from devices.ocr.accuracy import summary, text_table

pytestmark = pytest.mark.timeout(600)


def test_no_wrong_container_number_is_confident(repo_container_table, capsys):
    with capsys.disabled():
        print("\n" + text_table(repo_container_table, []))
    assert len(repo_container_table) >= 10
    wrong = [r for r in repo_container_table if r.verdict == "WRONG"]
    assert not wrong, wrong


def test_container_numbers(repo_container_table):
    s = summary(repo_container_table, [])
    assert s["exact_pct"] >= 90.0, f"{s['exact']}/{s['readable']} read exactly"


def test_plates(repo_plate_table, capsys):
    with capsys.disabled():
        print("\n" + text_table([], repo_plate_table))
    assert len(repo_plate_table) >= 15
    wrong_confident = [r for r in repo_plate_table if r.verdict == "wrong" and not r.needs_review]
    assert not wrong_confident, wrong_confident
    s = summary([], repo_plate_table)
    assert s["plates_exact_pct"] >= 90.0, f"{s['plates_exact']}/{s['plates']} plates exact"

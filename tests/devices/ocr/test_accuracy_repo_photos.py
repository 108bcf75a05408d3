"""Accuracy on the labelled photographs kept in the repository (tests/data), what a fresh
clone can check alone; the whole set, read in place, is the accuracy suite
(test_accuracy_real_photos.py, `make accuracy`).

Targets (issue 18): each source repository held out in turn, ≥ 95 % of readable container
numbers and ≥ 95 % of plates exact; never a wrong number or plate reported confident,
held out or in sample.
"""

import pytest

from devices.ocr.accuracy import of_kind, score, text_table

pytestmark = pytest.mark.timeout(900)


@pytest.mark.parametrize("kind", ["container", "plate"])
def test_no_wrong_reading_is_confident_held_out_or_in_sample(repo_report, kind, capsys):
    with capsys.disabled():
        print("\n" + text_table(of_kind(repo_report.sample, kind)))
    held = repo_report.held_out_rows(kind)
    assert len(held) >= 10
    wrong = [r for r in held + of_kind(repo_report.sample, kind) if r.verdict == "WRONG"]
    assert not wrong, wrong


@pytest.mark.parametrize("kind", ["container", "plate"])
def test_held_out_exact(repo_report, kind):
    s = score(repo_report.held_out_rows(kind))
    assert s.exact_pct >= 95.0, f"{kind}: {s.exact}/{s.readable} read exactly, held out"


def test_every_source_is_held_out_once(repo_report):
    held = [row.reading.file for fold in repo_report.folds for row in fold.rows]
    assert sorted(held) == sorted(r.file for r in repo_report.photos)
    for fold in repo_report.folds:
        assert all(row.reading.source == fold.source for row in fold.rows)

"""The synthetic set (firmware_stubs/camera/synthetic.py), a second test set beside the
real photos: layouts and faults real photos are short of — boxed check digits, two-line
and vertical numbers, oblique, turned (35–55°, in perspective) and distant doors, glare,
dirt; plates of every colour and length, eight-character new-energy plates among them.

Targets: never a wrong container number or plate reported confident (judged at the
threshold fitted on the photos); the exact share per kind and class below.
"""

import numpy as np
import pytest

from devices.ocr.accuracy import of_kind, score, text_table

pytestmark = pytest.mark.timeout(900)

#: Share of the synthetic images read exactly, per kind (percent).
SYNTHETIC_TARGET = {"container": 95.0, "plate": 95.0}


@pytest.mark.parametrize("kind", ["container", "plate"])
def test_no_wrong_synthetic_reading_is_confident(repo_report, kind, capsys):
    rows = of_kind(repo_report.synthetic_rows, kind)
    with capsys.disabled():
        print("\n" + text_table(rows))
    assert len(rows) >= 24
    wrong = [r for r in rows if r.verdict == "WRONG"]
    assert not wrong, wrong


@pytest.mark.parametrize("kind", ["container", "plate"])
def test_synthetic_exact(repo_report, kind):
    s = score(of_kind(repo_report.synthetic_rows, kind))
    assert s.exact_pct >= SYNTHETIC_TARGET[kind], f"{kind}: {s.exact}/{s.readable} exact"


def test_seven_characters_read_on_a_green_plate_are_never_confident(repo_report):
    green = [r for r in repo_report.synthetic_rows if r.reading.source.startswith("green")]
    assert green
    for row in green:
        if row.reading.read and len(row.reading.read) != 8:
            assert row.needs_review, row


def test_the_set_is_deterministic_and_covers_every_class():
    from firmware_stubs.camera import synthetic

    a, b = synthetic.samples(), synthetic.samples()
    assert [(s.name, s.label) for s in a] == [(s.name, s.label) for s in b]
    assert np.array_equal(a[0].draw(), b[0].draw())
    assert [s.label for s in synthetic.samples(seed=19)] != [s.label for s in a]
    classes = {s.cls for s in a}
    assert {
        "boxed_check",
        "two_line",
        "vertical",
        "oblique",
        "yawed",
        "distant",
        "glare",
        "dirt",
    } <= classes
    assert {"green_8", "green_large_8", "yellow_two_line", "white_police"} <= classes
    eight = [s.label for s in a if s.cls.startswith("green")]
    assert eight and all(len(label) == 8 for label in eight)

"""Chinese plate formats."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devices.ocr.plates import find_plate, normalise_plate, plate_kind


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("粤B12345", "ordinary"),
        ("皖A195K9", "ordinary"),
        ("粤BD12345", "new_energy_small"),
        ("粤BDA1234", "new_energy_small"),
        ("粤B12345D", "new_energy_large"),
        ("粤Z1234港", "cross_border"),
        ("粤Z1A34澳", "cross_border"),
        ("沪A1707领", "special"),
        ("京A1234学", "special"),
        ("WJ1693015", "armed_police"),
        ("使014123", "embassy"),
    ],
)
def test_valid_plates(text, kind):
    assert plate_kind(text) == kind


@pytest.mark.parametrize(
    "text", ["粤B1234", "粤B1234567", "X粤12345", "粤BO1234", "粤BI1234", "粤1B2345", "AB12345", ""]
)
def test_invalid_plates(text):
    assert plate_kind(text) is None


def test_normalise_removes_separators_and_fixes_o_and_i():
    assert normalise_plate("粤B·O12I4") == "粤B01214"
    assert normalise_plate(" 皖A 195K9 ") == "皖A195K9"


def test_find_plate_inside_a_longer_line():
    assert find_plate("车牌:粤B12345") == ("粤B12345", "ordinary")
    assert find_plate("MAERSK") is None


@given(st.text(max_size=16))
def test_arbitrary_text_never_crashes(text):
    result = find_plate(text)
    assert result is None or plate_kind(result[0]) == result[1]

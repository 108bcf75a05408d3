"""ISO 6346: check digit, letter values, correction, repairs, size/type codes."""

import itertools
import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devices.ocr import iso6346
from tests.realdata import REPO_DATA

# Numbers from public sources: the ISO 6346 example (Wikipedia) and BIC documentation.
KNOWN_VALID = ["CSQU3054383", "BICU1234565", "MSKU9070323", "TGHU8643952", "RWWL4564317"]


def test_letter_values_skip_multiples_of_eleven():
    values = iso6346.LETTER_VALUES
    assert values["A"] == 10
    assert values["B"] == 12
    assert values["K"] == 21
    assert values["L"] == 23
    assert values["U"] == 32
    assert values["V"] == 34
    assert values["Z"] == 38
    assert not any(v % 11 == 0 for v in values.values())
    assert len(set(values.values())) == 26


@pytest.mark.parametrize("number", KNOWN_VALID)
def test_known_numbers_are_valid(number):
    assert iso6346.is_valid(number)


def test_remainder_ten_is_printed_as_zero():
    # Find a prefix whose weighted sum leaves 10 and check it yields 0.
    for serial in range(1_000_000):
        first = f"CSQU{serial:06d}"
        total = sum(iso6346.char_value(c) << i for i, c in enumerate(first))
        if total % 11 == 10:
            assert iso6346.check_digit(first) == 0
            assert iso6346.is_valid(first + "0")
            return
    pytest.fail("no prefix with remainder 10 found")


def test_every_wrong_check_digit_is_rejected():
    for number in KNOWN_VALID:
        for digit in string.digits:
            candidate = number[:10] + digit
            assert iso6346.is_valid(candidate) == (digit == number[10])


def test_exhaustive_single_character_substitution_in_serial_is_detected():
    # Changing one digit of the serial always changes the check digit (weights 2^i mod 11 ≠ 0),
    # except when the remainder moves between 0 and 10 (both printed as 0).
    base = "CSQU3054383"
    undetected = 0
    for pos, digit in itertools.product(range(4, 10), string.digits):
        if digit == base[pos]:
            continue
        changed = base[:pos] + digit + base[pos + 1 :]
        undetected += iso6346.is_valid(changed)
    assert undetected <= 1


def test_letters_eleven_apart_are_indistinguishable_in_some_positions():
    # A(10)/K(21)/U(32) differ by 11: the check digit cannot tell them apart (TRAPS.md).
    assert iso6346.check_digit("AAAU123456") == iso6346.check_digit("KAAU123456")


@given(st.text(alphabet=string.ascii_uppercase, min_size=4, max_size=4), st.integers(0, 999_999))
def test_with_check_digit_is_always_valid(owner, serial):
    number = iso6346.with_check_digit(f"{owner}{serial:06d}")
    assert iso6346.is_valid(number)


@given(st.text(max_size=20))
def test_arbitrary_text_never_crashes(text):
    assert iso6346.is_valid(text) in (True, False)
    coerced = iso6346.coerce(text)
    assert coerced is None or len(coerced) == 11


def test_check_digit_rejects_bad_shapes():
    with pytest.raises(ValueError, match="ten characters"):
        iso6346.check_digit("CSQU30543")
    with pytest.raises(ValueError, match="four letters"):
        iso6346.check_digit("CSQ13054383"[:10])


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("CSQU 305438 3", "CSQU3054383"),
        ("C5QU3O54383", "CSQU3054383"),  # 5→S in the owner code, O→0 in the serial
        ("CSQU3054B83", "CSQU3054883"),  # B→8 in the serial (not valid, but coerced)
        ("8ICU1234565", "BICU1234565"),
        ("TGHU864395Z", "TGHU8643952"),
        ("TGHU8G43952", "TGHU8643952"),
        ("TEMU-052462-0", "TEMU0524620"),
        ("TGH08643952", "TGHU8643952"),  # 0 in the category position → U
        ("ＴEMU503７029", "TEMU5037029"),  # full-width forms from the Chinese model
    ],
)
def test_position_aware_coercion(raw, expected):
    assert iso6346.coerce(raw) == expected


def test_coerce_refuses_wrong_length():
    assert iso6346.coerce("CSQU305438") is None
    assert iso6346.coerce("CSQU30543833") is None


def test_repairs_valid_number_is_itself():
    assert iso6346.repairs("CSQU3054383") == ["CSQU3054383"]


def test_repairs_finds_single_lookalike_fix():
    # The serial's 8 read as 3: only one look-alike change makes the number valid.
    fixes = iso6346.repairs("TGHU3643952")
    assert "TGHU8643952" in fixes


def test_repairs_reports_every_valid_reading_so_ambiguity_is_visible():
    fixes = iso6346.repairs("BEAU2576870")
    assert len(fixes) >= 1
    assert all(iso6346.is_valid(f) for f in fixes)
    # A wrong check digit that is no look-alike cannot be repaired.
    assert iso6346.repairs("TEMU0524621") == []


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("22G1", "22G1"),
        ("45G1", "45G1"),
        ("45R1", "45R1"),
        ("L5G1", "L5G1"),
        ("2261", "22G1"),
        ("22GI", "22G1"),
        ("LEG1", "LEG1"),
        ("2.6m", None),
        ("KGS1", None),
        ("9999", None),
    ],
)
def test_size_type(raw, expected):
    assert iso6346.coerce_size_type(raw) == expected


def test_labels_of_the_photos_kept_in_the_repository_pass_the_check():
    import csv

    with open(REPO_DATA / "containers" / "labels.csv", encoding="utf-8") as fh:
        numbers = [row["container_number"] for row in csv.DictReader(fh)]
    assert len(numbers) >= 10
    assert all(iso6346.is_valid(n) for n in numbers)


def test_exhaustive_letter_substitutions_only_pass_when_eleven_apart():
    # Every single-letter change in the owner code and category of every known number:
    # the weighted sum keeps its remainder only when the two letter values differ by a
    # multiple of 11 (A/K/U, B/L/V, … — TRAPS.md); then the check digit cannot see it.
    def total(text: str) -> int:
        return sum(iso6346.char_value(c) << i for i, c in enumerate(text[:10]))

    kept = 0
    for number in KNOWN_VALID:
        for pos in range(4):
            for letter in string.ascii_uppercase:
                if letter == number[pos]:
                    continue
                changed = number[:pos] + letter + number[pos + 1 :]
                delta = iso6346.LETTER_VALUES[letter] - iso6346.LETTER_VALUES[number[pos]]
                same_remainder = total(changed) % 11 == total(number) % 11
                assert same_remainder == (delta % 11 == 0), changed
                if same_remainder:
                    kept += 1
                    assert iso6346.is_valid(changed)
                elif iso6346.is_valid(changed):
                    # Only the 0/10 remainder pair prints the same check digit.
                    assert {total(changed) % 11, total(number) % 11} == {0, 10}
    assert kept > 0


def test_exhaustive_check_digits_of_all_serials_for_one_owner():
    # Brute force against an independent formula for 100 000 serials.
    values = dict(iso6346.LETTER_VALUES)
    owner_sum = sum(values[c] * 2**i for i, c in enumerate("MSKU"))
    for serial in range(0, 1_000_000, 10):
        digits = f"{serial:06d}"
        total = owner_sum + sum(int(d) * 2 ** (i + 4) for i, d in enumerate(digits))
        assert iso6346.check_digit("MSKU" + digits) == total % 11 % 10

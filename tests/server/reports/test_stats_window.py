"""The reports' pure parts: percentiles against the standard library, round histogram
buckets, the CSV writer, and reading the window and zone."""

from __future__ import annotations

import csv
import io
import statistics
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.reports.csv_export import BOM, render, text_cell
from server.reports.stats import buckets_for, nice_width, percentile, summarise
from server.reports.window import ReportParamError, parse_bucket_min, parse_window

NOW = datetime(2026, 11, 23, 3, 15, tzinfo=UTC)  # 11:15 in Shanghai


@given(
    st.lists(st.floats(0, 10_000, allow_nan=False), min_size=2, max_size=60),
    st.integers(1, 99),
)
def test_percentile_is_the_inclusive_method_of_the_standard_library(
    values: list[float], k: int
) -> None:
    # statistics.quantiles(method="inclusive") is Hyndman & Fan definition 7 as well.
    expected = statistics.quantiles(values, n=100, method="inclusive")[k - 1]
    assert percentile(sorted(values), k / 100) == pytest.approx(expected, abs=1e-9)


def test_summary_and_edges() -> None:
    summary = summarise([95.0, 50.0, 70.0])
    assert summary is not None
    assert (summary.count, summary.min, summary.p50, summary.max) == (3, 50.0, 70.0, 95.0)
    assert summary.p90 == pytest.approx(90.0) and summary.mean == pytest.approx(215 / 3)
    assert summarise([]) is None
    assert percentile([7.0], 0.9) == 7.0
    with pytest.raises(ValueError, match="no values"):
        percentile([], 0.5)


def test_buckets_are_round_and_cover_every_value() -> None:
    assert nice_width(50, 130) == 10  # 9 buckets; 5 min would need 17
    assert nice_width(0, 0) == 1
    assert nice_width(30, 900) == 90
    assert nice_width(0, 30 * 1440) == 4 * 1440  # whole days beyond 12 h
    buckets = buckets_for(50, 130, 10)
    assert (buckets.first, buckets.n) == (50, 9)
    assert buckets.counts([50, 59.99, 60, 130, 140, 49.9]) == [2, 1, 0, 0, 0, 0, 0, 0, 1]


@given(st.lists(st.floats(0, 50_000, allow_nan=False), min_size=1, max_size=40))
def test_chosen_buckets_hold_every_value_in_at_most_twelve(values: list[float]) -> None:
    width = nice_width(min(values), max(values))
    buckets = buckets_for(min(values), max(values), width)
    assert buckets.n <= 12
    assert sum(buckets.counts(values)) == len(values)


def test_csv_quotes_line_breaks_and_defuses_formulas() -> None:
    text = render(
        ["a", "b", "c"],
        [["x,y", 'say "hi"', "two\nlines"], [text_cell("=HYPERLINK(1)"), text_cell("-3"), 1.5]],
    )
    assert text.startswith(BOM)
    rows = list(csv.reader(io.StringIO(text[1:], newline="")))
    assert rows == [
        ["a", "b", "c"],
        ["x,y", 'say "hi"', "two\nlines"],
        ["'=HYPERLINK(1)", "'-3", "1.5"],
    ]
    assert text[1:].split("\r\n")[1] == '"x,y","say ""hi""","two\nlines"'


def test_default_window_is_30_calendar_days_ending_now() -> None:
    window = parse_window(None, None, None, NOW)
    assert window.end == NOW and window.zone_name == "Asia/Shanghai"
    assert window.start == datetime(2026, 10, 24, 16, 0, tzinfo=UTC)  # 25 Oct 00:00 +08
    days = window.days()
    assert len(days) == 30 and (str(days[0]), str(days[-1])) == ("2026-10-25", "2026-11-23")
    # Ending at a midnight: the 30 days before it.
    window = parse_window(None, "2026-11-24T00:00:00+08:00", None, NOW)
    assert (str(window.days()[0]), str(window.days()[-1])) == ("2026-10-25", "2026-11-23")


def test_days_across_a_daylight_saving_change() -> None:
    window = parse_window(
        "2026-10-24T00:00:00+02:00", "2026-10-27T00:00:00+01:00", "Europe/Berlin", NOW
    )  # the clocks went back on 25 October 2026: that day has 25 hours
    assert [str(d) for d in window.days()] == ["2026-10-24", "2026-10-25", "2026-10-26"]
    assert window.day_of(datetime(2026, 10, 25, 22, 59, tzinfo=UTC)).isoformat() == "2026-10-25"
    assert window.day_of(datetime(2026, 10, 25, 23, 0, tzinfo=UTC)).isoformat() == "2026-10-26"
    assert window.bounds() == [
        datetime(2026, 10, 23, 22, 0, tzinfo=UTC),
        datetime(2026, 10, 24, 22, 0, tzinfo=UTC),  # 25 Oct 00:00 CEST
        datetime(2026, 10, 25, 23, 0, tzinfo=UTC),  # 26 Oct 00:00 CET
        datetime(2026, 10, 26, 23, 0, tzinfo=UTC),
    ]


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (("2026-11-01T00:00:00+08:00", None, "Asia/Atlantis"), "tz"),
        (("2026-11-01 00:00:00", None, None), "from"),
        ((None, "2026-11-31T00:00:00Z", None), "to"),
        (("2026-11-23T03:15:00Z", None, None), "from"),  # from = now: an empty window
    ],
)
def test_bad_window(args: tuple[str | None, str | None, str | None], field: str) -> None:
    with pytest.raises(ReportParamError) as caught:
        parse_window(*args, NOW)
    assert caught.value.field == field


def test_space_instead_of_t_is_rfc3339_too() -> None:
    window = parse_window("2026-11-01 00:00:00.5+08:00", "2026-11-02T00:00:00Z", "UTC", NOW)
    assert window.start == datetime(2026, 10, 31, 16, 0, 0, 500_000, tzinfo=UTC)


def test_bucket_width() -> None:
    assert parse_bucket_min(None) is None and parse_bucket_min("") is None
    assert parse_bucket_min("15") == 15
    with pytest.raises(ReportParamError):
        parse_bucket_min("1e3")

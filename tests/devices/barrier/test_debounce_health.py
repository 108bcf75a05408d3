"""Presence debouncing and health folding (pure)."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from devices.barrier.codec import BarrierStatus
from devices.barrier.debounce import PresenceDebouncer
from devices.barrier.health import HealthTracker, PollOutcome

OK = BarrierStatus(False, "closed", False, True, False)
FAULT = BarrierStatus(False, "fault", True, True, False, reason="both limit switches")


def test_first_sample_reported_then_changes_after_hold() -> None:
    d = PresenceDebouncer(0.3)
    assert d.feed(False, 0.0) is False
    assert d.feed(True, 1.0) is None
    assert d.feed(True, 1.2) is None
    assert d.feed(True, 1.3) is True
    assert d.feed(True, 1.4) is None
    assert d.feed(False, 2.0) is None
    assert d.feed(True, 2.1) is None  # blip ended before the hold time: nothing
    assert d.feed(False, 2.2) is None
    assert d.feed(False, 2.4) is None
    assert d.feed(False, 2.6) is False


@given(st.lists(st.tuples(st.booleans(), st.floats(0.0, 1.0)), max_size=60))
def test_reported_states_alternate_and_match_stable(samples) -> None:
    d = PresenceDebouncer(0.25)
    now = 0.0
    reported: list[bool] = []
    for sample, gap in samples:
        now += gap
        if (event := d.feed(sample, now)) is not None:
            reported.append(event)
    for a, b in itertools.pairwise(reported):
        assert a != b
    if reported:
        assert reported[-1] == d.stable


@given(st.lists(st.booleans(), min_size=2, max_size=40))
def test_changes_shorter_than_hold_never_reported(samples) -> None:
    d = PresenceDebouncer(10.0)
    events = [d.feed(s, i * 0.1) for i, s in enumerate(samples)]
    assert events[0] == samples[0]
    assert all(e is None for e in events[1:])


def test_health_sequence() -> None:
    h = HealthTracker(down_after=3, window=4)
    assert h.feed(PollOutcome(status=OK)) == ("ok", "controller answering, barrier without fault")
    assert h.feed(PollOutcome(status=OK)) is None
    change = h.feed(PollOutcome(status=OK, retries=1, crc_errors=1))
    assert change is not None
    assert change[0] == "degraded"
    assert "1 replies with a CRC error" in change[1]
    assert h.feed(PollOutcome(error="timeout")) is None  # still degraded: not news
    assert h.feed(PollOutcome(error="timeout")) is None
    assert h.feed(PollOutcome(error="timeout")) == ("down", "no valid reply for 3 polls: timeout")
    assert h.feed(PollOutcome(error="timeout")) is None
    change = h.feed(PollOutcome(status=OK))
    assert change is not None
    assert change[0] == "degraded"
    assert "polls failed" in change[1]
    for _ in range(2):
        assert h.feed(PollOutcome(status=OK)) is None
    assert h.feed(PollOutcome(status=OK)) == ("ok", "controller answering, barrier without fault")
    change = h.feed(PollOutcome(status=FAULT))
    assert change == ("degraded", "barrier fault: both limit switches")


def test_a_light_that_cannot_be_set_degrades_health() -> None:
    h = HealthTracker(down_after=3, window=4)
    assert h.feed(PollOutcome(status=OK)) is not None
    change = h.feed(PollOutcome(status=OK, lamp_error="module answered with exception 2"))
    assert change == (
        "degraded",
        "lane signal not set: module answered with exception 2",
    )


@given(st.lists(st.booleans(), max_size=80))
def test_health_reports_only_changes(answered: list[bool]) -> None:
    h = HealthTracker(down_after=2, window=5)
    reported = [
        change[0]
        for ok in answered
        if (change := h.feed(PollOutcome(status=OK) if ok else PollOutcome(error="x")))
    ]
    for a, b in itertools.pairwise(reported):
        assert a != b

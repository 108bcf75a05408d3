"""The judge's ordering without a store (server.judge_order): what a node's sequence
window holds and lets go, and what a batch judges again when a message comes late."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from contract.payloads import EdgeMessage, Position
from server.judge_order import (
    Event,
    SeqWindow,
    events_to_judge,
    merged,
    rerun_from,
)

T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


def fix(seq: int, seconds: float) -> Event:
    msg = Position(node_id="TRK-1", seq=seq, ts=T0 + timedelta(seconds=seconds), lat=23.1,
                   lon=113.4, fix="3d")  # fmt: skip
    return (msg.ts, msg.seq), msg


def seqs(events: list[Event]) -> list[int]:
    return [m.seq for _, m in events]


def add(window: SeqWindow, event: Event, now: float) -> None:
    key, message = event
    window.add(key, message, now)


def test_a_gap_holds_what_lies_beyond_it_until_it_fills() -> None:
    window = SeqWindow(upto=10)
    add(window, fix(11, 1), now=0.0)
    add(window, fix(13, 3), now=0.0)
    ready, late = window.release(now=0.0, hold_s=30.0)
    assert seqs(ready) == [11] and late == []  # 13 waits for 12
    add(window, fix(12, 2), now=1.0)
    ready, late = window.release(now=1.0, hold_s=30.0)
    assert seqs(ready) == [12, 13] and late == [] and window.upto == 13


def test_after_the_hold_the_window_judges_what_it_has_and_collects_the_straggler() -> None:
    window = SeqWindow(upto=0)
    add(window, fix(2, 2), now=0.0)
    assert window.release(now=0.0, hold_s=30.0) == ([], [])  # the hold starts
    ready, _ = window.release(now=31.0, hold_s=30.0)
    assert seqs(ready) == [2] and window.missing == {1}
    add(window, fix(1, 1), now=40.0)  # the lost one turns up after all
    ready, late = window.release(now=40.0, hold_s=30.0)
    assert ready == [] and seqs(late) == [1] and window.missing == set()


def test_only_judged_channels_from_the_start_in_fix_time_order() -> None:
    early, a, b = fix(1, -5), fix(3, 20), fix(2, 10)
    other: Event = ((T0 + timedelta(seconds=15), 4), EdgeMessage(node_id="TRK-1", seq=4,
                                                                  ts=T0))  # fmt: skip
    assert seqs(events_to_judge([early, a, other, b], started=T0)) == [2, 3]


def test_rerun_from_the_first_late_event_or_an_event_not_after_the_last_judged() -> None:
    last = (T0 + timedelta(seconds=10), 10)
    after, before = fix(11, 11), fix(9, 5)
    assert rerun_from(last, [after], []) is None  # everything comes after: no rerun
    assert rerun_from(None, [before], []) is None  # nothing judged yet
    assert rerun_from(last, [before, after], []) == before[0]
    late = fix(8, 3)
    assert rerun_from(last, [after], [late]) == late[0]
    assert rerun_from(last, [before], [late]) == late[0]  # the earlier of the two


def test_merged_events_once_each_in_fix_time_order() -> None:
    one, two, three = fix(1, 1), fix(2, 2), fix(3, 3)
    assert seqs(merged([two, three], [three], [one])) == [1, 2, 3]

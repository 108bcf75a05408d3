"""The lane state machine: every way to the barrier opening, and every way it must not."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from edge.gate.lane import (
    Answer,
    BarrierClosed,
    BarrierOpened,
    CloseBarrier,
    Command,
    Event,
    LaneState,
    OpenBarrier,
    PassageFailed,
    PassageSent,
    Presence,
    ShowSignal,
    StartReading,
    Step,
    Tick,
    default_reason,
    lamp_for,
    lane_report,
    step,
)

LANE = "L1"
P = "P-G1-L1-1"


def fresh() -> LaneState:
    return LaneState(lane=LANE, decision_timeout_s=10.0)


def run(state: LaneState, *events: Event) -> Step:
    result = Step(state)
    for event in events:
        result = step(result.state, event)
    return result


def awaiting(now: float = 100.0) -> LaneState:
    return run(fresh(), Presence(True), PassageSent(1, P, now)).state


def signals(result: Step) -> list[str]:
    return [a.signal for a in result.actions if isinstance(a, ShowSignal)]


def test_arrival_starts_a_reading():
    result = step(fresh(), Presence(True))
    assert result.state.phase == "reading"
    assert result.state.occupied
    assert StartReading(1) in result.actions
    assert signals(result) == ["wait"]


def test_published_passage_awaits_a_decision_with_a_deadline():
    state = awaiting(now=100.0)
    assert state.phase == "awaiting"
    assert state.passage_id == P
    assert state.deadline == 110.0


def test_valid_open_for_the_current_passage_opens_then_closes_after_the_truck_left():
    result = step(awaiting(), Command("c1", P, LANE, "open"))
    assert result.actions == (OpenBarrier(P),)
    assert result.state.phase == "opening"
    result = step(result.state, BarrierOpened(True))
    assert result.state.phase == "open"
    assert result.answer() == Answer("done", f"barrier open for passage {P}")
    assert signals(result) == ["go"]
    result = step(result.state, Presence(False))
    assert result.state.phase == "closing"
    assert CloseBarrier("truck left the loop") in result.actions
    result = step(result.state, BarrierClosed(True))
    assert result.state.phase == "empty"
    assert result.state.passage_id is None
    assert signals(result) == ["idle"]


def test_open_for_another_passage_is_refused_and_the_barrier_stays_down():
    result = step(awaiting(), Command("c1", "P-other", LANE, "open"))
    assert result.state.phase == "awaiting"
    assert not any(isinstance(a, OpenBarrier) for a in result.actions)
    answer = result.answer()
    assert answer is not None and answer.result == "refused"
    assert "P-other is not the current passage P-G1-L1-1 of lane L1" in answer.detail


def test_open_for_another_lane_is_refused():
    result = step(awaiting(), Command("c1", P, "L2", "open"))
    answer = result.answer()
    assert answer == Answer("refused", "command for lane L2, this controller is lane L1")
    assert result.state.phase == "awaiting"


def test_open_while_the_lane_is_empty_or_still_reading_is_refused():
    empty = step(fresh(), Command("c1", P, LANE, "open"))
    assert empty.answer() is not None and empty.answer().result == "refused"  # type: ignore[union-attr]
    assert "no truck is in the lane" in empty.answer().detail  # type: ignore[union-attr]
    reading = run(fresh(), Presence(True), Command("c1", P, LANE, "open"))
    assert reading.state.phase == "reading"
    assert "still being read" in reading.answer().detail  # type: ignore[union-attr]


def test_hold_keeps_the_barrier_down():
    result = step(awaiting(), Command("c1", P, LANE, "hold"))
    assert result.state.phase == "held"
    assert result.answer() == Answer("done", "barrier kept down: hold")
    assert signals(result) == ["hold"]
    assert not any(isinstance(a, OpenBarrier | CloseBarrier) for a in result.actions)


def test_no_decision_within_the_timeout_holds():
    state = awaiting(now=100.0)
    assert step(state, Tick(109.9)).state.phase == "awaiting"
    result = step(state, Tick(110.0))
    assert result.state.phase == "held"
    assert result.state.hold_reason == f"no decision within 10 s for {P}"
    assert signals(result) == ["hold"]


def test_a_lost_broker_holds_at_once():
    result = step(awaiting(now=100.0), Tick(101.0, connected=False))
    assert result.state.phase == "held"
    assert "broker" in (result.state.hold_reason or "")


def test_an_override_open_after_a_hold_or_timeout_opens():
    held = step(awaiting(now=100.0), Tick(200.0)).state
    result = step(held, Command("c2", P, LANE, "open"))
    assert result.actions == (OpenBarrier(P),)
    held = step(awaiting(), Command("c1", P, LANE, "hold")).state
    assert step(held, Command("c2", P, LANE, "open")).actions == (OpenBarrier(P),)


def test_a_failed_open_holds_and_answers_failed():
    opening = step(awaiting(), Command("c1", P, LANE, "open")).state
    result = step(opening, BarrierOpened(False, "jammed"))
    assert result.state.phase == "held"
    assert result.answer() == Answer("failed", "barrier did not open: jammed")
    assert signals(result) == ["hold"]


def test_hold_after_open_is_refused_the_barrier_closes_when_the_truck_left():
    opened = run(awaiting(), Command("c1", P, LANE, "open"), BarrierOpened(True)).state
    result = step(opened, Command("c2", P, LANE, "hold"))
    assert result.state.phase == "open"
    assert result.answer() is not None and result.answer().result == "refused"  # type: ignore[union-attr]


def test_a_second_open_is_answered_without_a_second_open():
    opening = step(awaiting(), Command("c1", P, LANE, "open")).state
    assert step(opening, Command("c2", P, LANE, "open")).answer().result == "refused"  # type: ignore[union-attr]
    opened = step(opening, BarrierOpened(True)).state
    again = step(opened, Command("c3", P, LANE, "open"))
    assert again.answer() is not None and again.answer().result == "done"  # type: ignore[union-attr]
    assert not any(isinstance(a, OpenBarrier) for a in again.actions)


def test_truck_leaving_while_opening_closes_after_the_open():
    opening = step(awaiting(), Command("c1", P, LANE, "open")).state
    left = step(opening, Presence(False)).state
    assert left.phase == "opening"
    result = step(left, BarrierOpened(True))
    assert result.state.phase == "closing"
    assert any(isinstance(a, CloseBarrier) for a in result.actions)
    assert result.answer() is not None and result.answer().result == "done"  # type: ignore[union-attr]


def test_truck_backing_out_ends_the_passage_without_opening():
    result = step(awaiting(), Presence(False))
    assert result.state.phase == "empty"
    assert result.actions == (ShowSignal("idle", "truck left the lane without passing"),)
    late = step(result.state, Command("c1", P, LANE, "open"))
    assert late.answer() is not None and late.answer().result == "refused"  # type: ignore[union-attr]


def test_a_late_reading_of_a_truck_that_left_is_ignored():
    state = run(fresh(), Presence(True), Presence(False)).state
    assert step(state, PassageSent(1, P, 5.0)).state.phase == "empty"
    # The next truck's reading is attempt 2; attempt 1 finishing late changes nothing.
    state = step(state, Presence(True)).state
    assert state.attempt == 2
    assert step(state, PassageSent(1, P, 5.0)).state.phase == "reading"
    assert step(state, PassageSent(2, "P-next", 5.0)).state.passage_id == "P-next"


def test_a_passage_that_cannot_be_stored_holds():
    state = step(fresh(), Presence(True)).state
    result = step(state, PassageFailed(1, "disk full"))
    assert result.state.phase == "held"
    assert result.state.hold_reason == "passage not published: disk full"


def test_next_truck_arriving_while_closing_is_read_once_the_barrier_is_down():
    closing = run(
        awaiting(), Command("c1", P, LANE, "open"), BarrierOpened(True), Presence(False)
    ).state
    state = step(closing, Presence(True)).state
    assert state.phase == "closing"
    result = step(state, BarrierClosed(True))
    assert result.state.phase == "reading"
    assert StartReading(2) in result.actions


EVENTS = st.one_of(
    st.builds(Presence, st.booleans()),
    st.builds(PassageSent, st.integers(0, 4), st.sampled_from([P, "P-x"]), st.floats(0, 1000)),
    st.builds(PassageFailed, st.integers(0, 4), st.just("x")),
    st.builds(
        Command,
        st.just("c"),
        st.sampled_from([P, "P-x"]),
        st.sampled_from([LANE, "L2"]),
        st.sampled_from(["open", "hold"]),
    ),
    st.builds(BarrierOpened, st.booleans(), st.just("r")),
    st.builds(BarrierClosed, st.booleans(), st.just("r")),
    st.builds(Tick, st.floats(0, 2000), st.booleans()),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(EVENTS, max_size=30))
def test_the_barrier_opens_only_for_a_matching_open_command(events):
    state = fresh()
    for event in events:
        before = state
        result = step(state, event)
        opens = [a for a in result.actions if isinstance(a, OpenBarrier)]
        if opens:
            assert isinstance(event, Command)
            assert event.action == "open"
            assert event.lane == LANE
            assert event.passage_id == before.passage_id == opens[0].passage_id
            assert before.occupied
        if isinstance(event, Command):
            assert result.answer() is not None or opens
        # The light is green only in `open`, which only a matching open reaches.
        if lamp_for(result.state) == "green":
            assert result.state.phase == "open" and result.state.occupied
            assert before.phase in ("opening", "open")
        state = result.state


def test_the_light_is_green_only_while_open_and_red_before_closing():
    lamps = []
    state = fresh()
    lamps.append(lamp_for(state))
    for event in (
        Presence(True),
        PassageSent(1, P, 100.0),
        Command("c1", P, LANE, "open"),
        BarrierOpened(True),
    ):
        state = step(state, event).state
        lamps.append(lamp_for(state))
    assert lamps == ["red", "red", "red", "red", "green"]
    leaving = step(state, Presence(False))
    assert leaving.state.phase == "closing"
    assert lamp_for(leaving.state) == "red"  # red as the close is ordered, not after it
    assert any(isinstance(a, CloseBarrier) for a in leaving.actions)
    assert lamp_for(step(leaving.state, BarrierClosed(True)).state) == "red"


def test_hold_timeout_and_lost_broker_are_red_with_their_reason():
    held = step(awaiting(), Command("c1", P, LANE, "hold", ("release_missing", "dishonest")))
    assert lamp_for(held.state) == "red"
    assert held.state.hold_reason == "server decided hold: release_missing; dishonest"
    report = lane_report(held.state, "red", default_reason(held.state))
    assert (report.state, report.signal, report.passage_id) == ("hold", "red", P)
    assert report.reason == "server decided hold: release_missing; dishonest"
    timed_out = step(awaiting(100.0), Tick(110.5)).state
    assert (lane_report(timed_out, "red", None).state, lamp_for(timed_out)) == ("hold", "red")
    lost = step(awaiting(), Tick(101.0, connected=False)).state
    assert lamp_for(lost) == "red"
    assert default_reason(lost) == "no connection to the broker: no decision can arrive"


def test_lane_report_names_the_contract_states():
    assert lane_report(fresh(), "red", None).state == "idle"
    assert lane_report(awaiting(), "red", None).state == "waiting"
    reading = step(fresh(), Presence(True)).state
    assert lane_report(reading, "red", None).passage_id is None
    assert default_reason(awaiting()) == f"passage {P} published: decision due within 10 s"
    # The report never says green outside `open`, whatever it is given.
    assert lane_report(awaiting(), "green", None).signal == "red"

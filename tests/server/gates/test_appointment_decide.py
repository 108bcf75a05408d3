"""The decision on an appointment (pure): which booking a passage is, and every reason."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from server.gates.appointments import Appointment, decide_appointment
from server.gates.decide import Decision
from tests.server.gates.test_decide import plate, reading

T0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
GATE = "G-BAIYUN-1"
BOX = "MSKU1234565"


def booking(**over: object) -> Appointment:
    base = Appointment(
        appointment_id="APT-1",
        plate="粤B·12345",
        containers=(BOX,),
        gate_id=GATE,
        direction="in",
        window_start=T0 - timedelta(hours=1),
        window_end=T0 + timedelta(hours=1),
    )
    return replace(base, **over)  # type: ignore[arg-type]


def codes(decision: Decision | None) -> list[str]:
    assert decision is not None
    return decision.reason_codes


def test_a_matching_vehicle_in_its_window_is_released() -> None:
    decision = decide_appointment(GATE, "in", [reading(BOX)], plate("粤B12345"), T0, [booking()])
    assert decision is not None
    assert (decision.action, decision.reasons, decision.appointment_id) == ("open", (), "APT-1")
    assert (decision.trip_id, decision.mismatch) == (None, None)


def test_no_booking_no_decision() -> None:
    assert decide_appointment(GATE, "in", [reading(BOX)], plate("粤C0"), T0, [booking()]) is None
    other_gate = [booking(gate_id="G-HUANGPU-1")]
    assert decide_appointment(GATE, "in", [reading(BOX)], plate("粤B12345"), T0, other_gate) is None
    cancelled = [booking(status="cancelled")]
    assert decide_appointment(GATE, "in", [reading(BOX)], plate("粤B12345"), T0, cancelled) is None


def test_every_reason_of_a_booking_is_listed() -> None:
    late = T0 + timedelta(hours=3)
    used = booking(status="used", used_by_passage="P-0", containers=())
    decision = decide_appointment(GATE, "out", [reading(BOX)], plate("粤B12345"), late, [used])
    assert codes(decision) == [
        "appointment_containers",
        "appointment_direction",
        "appointment_window",
        "appointment_used",
    ]
    assert decision is not None and decision.action == "hold"
    assert decision.reason_texts[0] == f"container {BOX} is not on appointment APT-1"
    assert "after the window of appointment APT-1" in decision.reason_texts[2]
    assert decision.reason_texts[3] == "appointment APT-1 was already used (passage P-0)"
    # containers other than the booked ones are a discrepancy; the rest is the booking's
    assert decision.mismatch == f"appointment APT-1: container {BOX} is not on appointment APT-1"


def test_early_is_held_without_an_alarm() -> None:
    early = T0 - timedelta(hours=2)
    decision = decide_appointment(GATE, "in", [reading(BOX)], plate("粤B12345"), early, [booking()])
    assert decision is not None and codes(decision) == ["appointment_window"]
    assert "before the window" in decision.reason_texts[0] and decision.mismatch is None


def test_a_booked_container_not_seen_and_a_reading_to_review() -> None:
    decision = decide_appointment(GATE, "in", [], plate("粤B12345"), T0, [booking()])
    assert codes(decision) == ["appointment_containers"]
    assert decision is not None and decision.reason_texts == [f"booked container(s) {BOX} not seen"]
    unsure = [reading("MSKU1234566", ok=False)]
    decision = decide_appointment(GATE, "in", unsure, plate("粤B12345"), T0, [booking()])
    assert codes(decision) == ["check_digit"]  # an officer corrects it; no guess, no alarm
    assert decision is not None and decision.mismatch is None


def test_matched_by_containers_when_the_plate_is_unsure() -> None:
    decision = decide_appointment(
        GATE, "in", [reading(BOX)], plate("粤B1234S", review=True), T0, [booking()]
    )
    assert codes(decision) == ["plate_review"]
    assert decide_appointment(GATE, "in", [reading(BOX)], None, T0, [booking()]) is not None


def test_of_two_bookings_the_active_one_in_its_window_counts() -> None:
    morning = booking(appointment_id="APT-AM", status="used", used_by_passage="P-1")
    afternoon = booking(
        appointment_id="APT-PM",
        window_start=T0 + timedelta(hours=4),
        window_end=T0 + timedelta(hours=6),
    )
    at = T0 + timedelta(hours=5)
    decision = decide_appointment(
        GATE, "in", [reading(BOX)], plate("粤B12345"), at, [morning, afternoon]
    )
    assert decision is not None and (decision.action, decision.appointment_id) == ("open", "APT-PM")
    # back in the morning window after it was used: held, used
    decision = decide_appointment(GATE, "in", [reading(BOX)], plate("粤B12345"), T0, [morning])
    assert codes(decision) == ["appointment_used"]

"""The gate decision table: every reason, departure and arrival, matching rules."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from contract.payloads import ContainerReading, PlateReading
from server.gates.decide import (
    REASON_CODES,
    Decision,
    ReleaseRecord,
    TripFacts,
    decide,
    match_candidates,
    normalise_plate,
)

T0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
ORIGIN, DEST = "G-HUANGPU-1", "G-BAIYUN-1"


def reading(number: str, ok: bool = True, review: bool = False) -> ContainerReading:
    return ContainerReading(number=number, confidence=0.97, check_digit_ok=ok, needs_review=review)


def plate(text: str = "粤A·D3K21", review: bool = False) -> PlateReading:
    return PlateReading(text=text, confidence=0.9, needs_review=review)


def trip(**over: object) -> TripFacts:
    base = TripFacts(
        trip_id="D-1",
        status="declared",
        vehicle_id="TRK-1",
        plate="粤A·D3K21",
        containers=("CSQU3054383",),
        lock_ids=("EL-1",),
        origin_gate=ORIGIN,
        destination_gate=DEST,
        credit="advanced",
        time_limit_min=120,
        lock_states={"EL-1": "sealed"},
    )
    return replace(base, **over)  # type: ignore[arg-type]


def arriving(**over: object) -> TripFacts:
    fields: dict[str, object] = {
        "status": "in_transit",
        "started_at": T0,
        "release": ReleaseRecord("R-1", T0, False),
    }
    fields.update(over)
    return trip(**fields)


GOOD = [reading("CSQU3054383")]


def codes(decision: Decision) -> list[str]:
    return decision.reason_codes


def test_departure_matches_and_sealed_opens() -> None:
    d = decide(ORIGIN, GOOD, plate(), T0, [trip()])
    assert (d.action, d.trip_id, d.phase, d.reasons, d.mismatch) == (
        "open",
        "D-1",
        "departure",
        (),
        None,
    )
    assert d.vehicle_id == "TRK-1"


@pytest.mark.parametrize(
    ("states", "code", "text"),
    [
        ({"EL-1": "unsealed"}, "lock_not_sealed", "lock EL-1 is unsealed, not sealed"),
        ({"EL-1": "open"}, "lock_not_sealed", "lock EL-1 is open, not sealed"),
        ({}, "lock_unreported", "lock EL-1 has not reported"),
    ],
)
def test_departure_needs_every_lock_sealed(states: dict[str, str], code: str, text: str) -> None:
    d = decide(ORIGIN, GOOD, plate(), T0, [trip(lock_states=states)])
    assert d.action == "hold" and codes(d) == [code] and d.reason_texts == [text]
    assert d.mismatch is None and d.trip_id == "D-1"


def test_no_declaration_holds_and_raises_mismatch() -> None:
    d = decide(ORIGIN, [reading("MSKU1234565")], plate("粤B12345"), T0, [trip()])
    assert d.action == "hold" and codes(d) == ["no_declaration"] and d.trip_id is None
    assert d.mismatch is not None and "MSKU1234565" in d.mismatch and "粤B12345" in d.mismatch


def test_a_trip_at_another_gate_or_in_the_wrong_status_does_not_match() -> None:
    assert decide("G-NANSHA-2", GOOD, plate(), T0, [trip()]).reason_codes == ["no_declaration"]
    # a declared trip is not yet expected at its destination
    assert decide(DEST, GOOD, plate(), T0, [trip()]).reason_codes == ["no_declaration"]
    # an in-transit trip is not expected back at its origin
    d = decide(ORIGIN, GOOD, plate(), T0, [arriving()])
    assert codes(d) == ["no_declaration"]


def test_needs_review_asks_an_officer_without_guessing() -> None:
    # the only reading needs review: no match attempted, no alarm
    d = decide(ORIGIN, [reading("CSQU3054383", review=True)], plate(), T0, [trip()])
    assert d.action == "hold" and codes(d) == ["container_review"]
    assert d.reason_texts == ["container reading needs review"] and d.mismatch is None
    # a second container needs review: matched by the first, still held, no alarm
    two = trip(containers=("CSQU3054383", "MSKU1234565"))
    d = decide(ORIGIN, [*GOOD, reading("MSKU1234566", review=True)], plate(), T0, [two])
    assert d.trip_id == "D-1" and codes(d) == ["container_review"] and d.mismatch is None


def test_never_matches_on_a_number_failing_its_check_digit() -> None:
    bad = reading("CSQU3054383", ok=False)
    d = decide(ORIGIN, [bad], None, T0, [trip()])
    assert d.action == "hold" and d.trip_id is None
    assert d.reason_texts == ["container number CSQU3054383 fails its check digit"]
    assert codes(d) == ["check_digit"] and d.mismatch is None
    # the plate may still say which declaration it is; the container stays unconfirmed
    d = decide(ORIGIN, [bad], plate(), T0, [trip()])
    assert (d.action, d.trip_id, codes(d), d.mismatch) == ("hold", "D-1", ["check_digit"], None)


def test_undeclared_and_missing_containers_are_mismatches() -> None:
    two = trip(containers=("CSQU3054383", "MSKU1234565"))
    d = decide(ORIGIN, [*GOOD, reading("TGHU0000000")], plate(), T0, [two])
    assert codes(d) == ["container_undeclared", "container_missing"]
    assert d.mismatch is not None and "TGHU0000000" in d.mismatch and "MSKU1234565" in d.mismatch


def test_plate_mismatch_and_plate_review() -> None:
    d = decide(ORIGIN, GOOD, plate("粤B99999"), T0, [trip()])
    assert (
        codes(d) == ["plate_mismatch"]
        and d.mismatch == "plate 粤B99999 is not the declared 粤A·D3K21"
    )
    d = decide(ORIGIN, GOOD, plate("粤B99999", review=True), T0, [trip()])
    assert codes(d) == ["plate_review"] and d.mismatch is None
    # separators and case do not matter; an unread plate is no reason by itself
    assert decide(ORIGIN, GOOD, plate("粤a d3k21"), T0, [trip()]).action == "open"
    assert decide(ORIGIN, GOOD, None, T0, [trip()]).action == "open"
    assert normalise_plate("粤A·D3K21") == normalise_plate("粤AD3K21")


def test_plate_matches_when_no_container_is_declared_or_read() -> None:
    boxless = trip(containers=())
    assert decide(ORIGIN, [], plate(), T0, [boxless]).action == "open"
    d = decide(ORIGIN, [], plate(review=True), T0, [boxless])
    assert codes(d) == ["no_declaration"]


def test_ambiguous_match_holds() -> None:
    other = trip(trip_id="D-2", vehicle_id="TRK-2")
    d = decide(ORIGIN, GOOD, plate(), T0, [trip(), other])
    assert codes(d) == ["ambiguous"] and d.mismatch is not None and "D-1, D-2" in d.mismatch


def test_clean_arrival_releases() -> None:
    d = decide(DEST, GOOD, plate(), T0 + timedelta(minutes=90), [arriving()])
    assert (d.action, d.phase, d.reasons) == ("open", "arrival", ())


def test_arrival_lists_every_failing_reason() -> None:
    bad = arriving(
        release=None,
        seal_alarms=("LOCK_TAMPER",),
        lock_states={"EL-1": "open"},
        unresolved_alarms=("ROUTE_DEVIATION", "DEVICE_OFFLINE"),
        credit="dishonest",
    )
    d = decide(DEST, GOOD, plate(), T0 + timedelta(minutes=150), [bad])
    assert d.action == "hold"
    assert codes(d) == [
        "release_missing",
        "seal_broken",
        "lock_not_sealed",
        "unresolved_alarm",
        "unresolved_alarm",
        "time_limit",
        "dishonest",
    ]
    assert "unresolved alarm ROUTE_DEVIATION" in d.reason_texts
    assert "time limit of 120 min exceeded by 30 min" in d.reason_texts
    assert d.mismatch is None


@pytest.mark.parametrize(
    ("over", "code"),
    [
        ({"release": None}, "release_missing"),
        ({"release": ReleaseRecord(None, None, True)}, "inspection_requested"),
        ({"seal_alarms": ("LOCK_OPENED",)}, "seal_broken"),
        ({"lock_states": {"EL-1": "unsealed"}}, "lock_not_sealed"),
        (
            {"lock_states": {}, "unauthenticated_locks": {"EL-1": "no secret is configured"}},
            "lock_unauthenticated",
        ),
        ({"seal_alarms": ("LOCK_REPORT_FORGED",)}, "seal_broken"),
        ({"unresolved_alarms": ("POSITION_IMPLAUSIBLE",)}, "unresolved_alarm"),
        ({"credit": "dishonest"}, "dishonest"),
        ({"started_at": None}, "not_started"),
        ({"started_at": T0 - timedelta(minutes=121)}, "time_limit"),
        ({"unjudged": "messages of V-1 stored up to no. 44, judged up to no. 40"}, "judging"),
    ],
)
def test_each_arrival_condition_alone_holds(over: dict[str, object], code: str) -> None:
    d = decide(DEST, GOOD, plate(), T0, [arriving(**over)])
    assert d.action == "hold" and codes(d) == [code]


def test_a_held_trip_is_decided_again_at_its_destination() -> None:
    d = decide(DEST, GOOD, plate(), T0, [arriving(status="held")])
    assert d.action == "open" and d.phase == "arrival"


def test_match_candidates_returns_only_possible_trips() -> None:
    trips = [trip(), trip(trip_id="D-9", containers=("MSKU1234565",), plate="粤B1")]
    assert [t.trip_id for t in match_candidates(ORIGIN, GOOD, plate(), trips)] == ["D-1"]


def test_every_reason_code_is_exercised() -> None:
    """Keep REASON_CODES and this table in step: the unknown-gate reason is the service's."""
    exercised = {
        "no_declaration", "ambiguous", "container_review", "check_digit",
        "container_undeclared", "container_missing", "plate_review", "plate_mismatch",
        "lock_not_sealed", "lock_unreported", "lock_unauthenticated", "seal_broken",
        "release_missing",
        "inspection_requested", "unresolved_alarm", "time_limit", "dishonest", "not_started",
        "judging",
        # on an appointment: tests/server/gates/test_appointment_decide.py
        "appointment_window", "appointment_used", "appointment_direction",
        "appointment_containers",
    }  # fmt: skip
    assert exercised == set(REASON_CODES)

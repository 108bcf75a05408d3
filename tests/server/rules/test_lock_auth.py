"""Lock report authentication in the rules: forged and replayed reports raise the critical
LOCK_REPORT_FORGED and are not believed; a counter gap raises LOCK_REPORT_GAP; honest
reports raise nothing of the kind."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from contract.payloads import LockReport
from server.geo import Geography
from server.rules import DEFAULT_PROFILES, Raise, TripContext, TripState, evaluate
from server.rules.alarms import Effect
from tests.lock_reports import signed_lock_fields
from tests.server.rules.trajectory import T0

SECRET = b"lock-L1-secret-0123"


def ctx(geo: Geography, secrets: dict[str, bytes] | None = None) -> TripContext:
    return TripContext(
        geography=geo,
        route_id="R-SZ-DG",
        profile=DEFAULT_PROFILES["general"],
        trip_id="TRIP-1",
        started_at=T0,
        time_limit_s=6 * 3600,
        lock_secrets={"L1": SECRET} if secrets is None else secrets,
    )


def report(
    seq: int,
    counter: int,
    state: str = "sealed",
    event: str = "status",
    secret: bytes = SECRET,
    **over: Any,
) -> LockReport:
    """The lock's report number `counter`, `seq` seconds into the trip, signed by `secret`."""
    ts = T0 + timedelta(seconds=seq)
    fields = signed_lock_fields(secret, "L1", ts, state, event, 80, counter=counter)
    return LockReport.model_validate({"node_id": "T1", "seq": seq, "ts": ts, **fields, **over})


def run(
    geo: Geography, reports: list[LockReport], secrets: dict[str, bytes] | None = None
) -> tuple[TripState, list[Effect]]:
    state, effects = TripState(), []
    context = ctx(geo, secrets)
    for r in reports:
        state, out = evaluate(state, r, context)
        effects += out
    return state, effects


def raised(effects: list[Effect]) -> list[tuple[str, str, str]]:
    return [
        (e.alarm_type, e.severity, str(e.detail.get("reason", e.detail.get("missing", ""))))
        for e in effects
        if isinstance(e, Raise)
    ]


@settings(max_examples=30, deadline=None)
@given(st.lists(st.sampled_from(["status", "low_battery", "wrong_password"]), max_size=20))
def test_honest_reports_raise_nothing_of_the_kind(geo: Geography, events: list[str]) -> None:
    reports = [report(i + 1, i + 1, event=e) for i, e in enumerate(events)]
    _, effects = run(geo, reports)
    assert not [e for e in effects if e.alarm_type.startswith("LOCK_REPORT")]


def test_a_forged_report_raises_the_critical_alarm_and_is_not_believed(geo: Geography) -> None:
    # The gateway hides an opening: "sealed" in place of the lock's own "shackle_opened".
    forged = report(2, 2, secret=b"the-gateway-guess-000")
    changed = report(3, 3, state="open", event="shackle_opened")
    changed = changed.model_copy(update={"state": "sealed", "event": "status"})
    stripped = report(4, 4).model_copy(update={"mac": None, "counter": None})
    state, effects = run(geo, [report(1, 1), forged, changed, stripped])
    assert raised(effects) == [
        ("LOCK_REPORT_FORGED", "critical", "bad_mac"),
        ("LOCK_REPORT_FORGED", "critical", "bad_mac"),
        ("LOCK_REPORT_FORGED", "critical", "unsigned"),
    ]
    assert state.lock_auth.counter("L1") == 1  # none of them moved the counter


def test_a_forged_opening_raises_no_lock_alarm_but_the_forgery(geo: Geography) -> None:
    forged = report(2, 2, state="open", event="rope_cut", secret=b"the-gateway-guess-000")
    _, effects = run(geo, [report(1, 1), forged])
    assert [e.alarm_type for e in effects] == ["LOCK_REPORT_FORGED"]


def test_a_replayed_report_raises_the_critical_alarm(geo: Geography) -> None:
    """The gateway sends an old, authentic "sealed" again (a new seq, the old counter)."""
    first = report(1, 1)
    later = report(2, 2)
    replay = first.model_copy(update={"seq": 3})
    older = first.model_copy(update={"seq": 4, "ts": T0 + timedelta(seconds=4)})
    _, effects = run(geo, [first, later, replay])
    assert raised(effects) == [("LOCK_REPORT_FORGED", "critical", "replayed")]
    forged = next(e for e in effects if e.alarm_type == "LOCK_REPORT_FORGED")
    assert forged.detail["counter"] == 1 and forged.detail["last_counter"] == 2
    # an old counter under a new time does not carry the lock's MAC: forged too
    _, effects = run(geo, [first, later, older])
    assert raised(effects) == [("LOCK_REPORT_FORGED", "critical", "bad_mac")]


def test_a_gap_in_the_counter_is_raised_once_with_how_many(geo: Geography) -> None:
    state, effects = run(geo, [report(1, 1), report(2, 2), report(3, 6), report(4, 7)])
    assert raised(effects) == [("LOCK_REPORT_GAP", "major", "3")]
    assert state.lock_auth.counter("L1") == 7


def test_the_first_report_of_a_trip_sets_the_counter(geo: Geography) -> None:
    """A lock has reported before the trip (other trips, its whole life): no gap."""
    _, effects = run(geo, [report(1, 5_000), report(2, 5_001)])
    assert effects == []


def test_a_lock_without_a_secret_is_not_checked_here(geo: Geography) -> None:
    """Nothing to check it with: the gate holds its truck (lock_unauthenticated)."""
    unsigned = report(1, 1).model_copy(update={"mac": None, "counter": None})
    _, effects = run(geo, [unsigned, report(2, 1, secret=b"x" * 16)], secrets={})
    assert effects == []


def test_authenticated_reports_still_reach_the_lock_rules(geo: Geography) -> None:
    out = run(geo, [report(1, 1), report(2, 2, state="open", event="rope_cut")])[1]
    assert sorted(e.alarm_type for e in out) == ["LOCK_OPENED", "LOCK_TAMPER"]


def test_evaluation_of_a_forgery_leaves_the_state_as_it_was(geo: Geography) -> None:
    state, _ = run(geo, [report(1, 1)])
    after, _ = evaluate(state, report(2, 2, secret=b"not-the-secret-0000"), ctx(geo))
    assert replace(after, device=state.device, gnss=state.gnss) == state

"""Scenario tests: clean noisy trips raise nothing; each incident is raised once and cleared."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contract.payloads import Availability, LockReport, Position
from server.geo import Geography
from server.rules import (
    DEFAULT_PROFILES,
    Clear,
    CreditClass,
    Effect,
    Raise,
    TripContext,
    TripState,
    device,
    evaluate,
    tick,
)
from server.rules.state import DeviceState
from tests.server.rules.trajectory import (
    FORBIDDEN_AT,
    FORBIDDEN_OFFSET_M,
    ROUTE_LEN_M,
    STOP_ZONE_AT,
    T0,
    TripBuilder,
    clean_trip,
    point_at,
    to_lonlat,
)


@dataclass
class Run:
    state: TripState
    effects: list[Effect]

    def raised(self, alarm_type: str) -> list[Raise]:
        return [e for e in self.effects if isinstance(e, Raise) and e.alarm_type == alarm_type]

    def cleared(self, alarm_type: str) -> list[Clear]:
        return [e for e in self.effects if isinstance(e, Clear) and e.alarm_type == alarm_type]

    def raised_types(self) -> Counter[str]:
        return Counter(e.alarm_type for e in self.effects if isinstance(e, Raise))


def ctx_for(
    geo: Geography, credit: CreditClass = "general", time_limit_s: float = 6 * 3600
) -> TripContext:
    return TripContext(
        geography=geo,
        route_id="R-SZ-DG",
        profile=DEFAULT_PROFILES[credit],
        trip_id="TRIP-1",
        started_at=T0,
        time_limit_s=time_limit_s,
    )


def run(events: Iterable[object], ctx: TripContext, tick_every_s: float = 60.0) -> Run:
    """Feed events in order, ticking the timers at each event's time every `tick_every_s`."""
    state = TripState()
    effects: list[Effect] = []
    next_tick: datetime | None = None
    for event in events:
        state, out = evaluate(state, event, ctx)  # type: ignore[arg-type]
        effects += out
        ts = event.ts  # type: ignore[attr-defined]
        if next_tick is None or ts >= next_tick:
            state, out = tick(state, ts, ctx)
            effects += out
            next_tick = ts + timedelta(seconds=tick_every_s)
    return Run(state, effects)


def lock(
    seq: int,
    ts: datetime,
    state: str = "sealed",
    event: str = "status",
    battery: float = 80.0,
    **kw: float,
) -> LockReport:
    return LockReport(
        node_id="T1",
        seq=seq,
        ts=ts,
        lock_id="L1",
        state=state,
        event=event,
        battery_pct=battery,
        **kw,
    )


def with_lock_status(positions: list[Position], every: int = 150) -> list[object]:
    out: list[object] = []
    for i, p in enumerate(positions):
        out.append(p)
        if i % every == 0:
            out.append(lock(10_000 + i, p.ts + timedelta(milliseconds=500)))
    return out


# ---------------------------------------------------------------- clean trips
@pytest.mark.parametrize("credit", ["advanced", "general", "dishonest"])
def test_clean_trip_raises_nothing(geo: Geography, credit: CreditClass) -> None:
    positions = clean_trip(seed=7)
    result = run(with_lock_status(positions), ctx_for(geo, credit))
    assert result.effects == []
    assert result.state.last_fix is not None
    assert geo.inside_site("S-DEST", *result.state.last_fix.lonlat, margin_m=50)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(min_value=0, max_value=2**31))
def test_clean_trips_with_noise_multipath_and_tunnel_raise_nothing(
    geo: Geography, seed: int
) -> None:
    positions = clean_trip(seed)
    # the generator really produced tunnel gaps and multipath-sized jumps
    assert sum(p.fix == "none" for p in positions) > 100
    result = run(positions, ctx_for(geo, "dishonest"))
    assert result.raised_types() == Counter()


def test_heavy_multipath_alone_raises_nothing(geo: Geography) -> None:
    b = TripBuilder(seed=3, multipath_rate=0.2)
    b.leave_town().drive(ROUTE_LEN_M, 80.0).stay(60)
    result = run(b.positions, ctx_for(geo, "dishonest"))
    assert result.raised_types() == Counter()


# ---------------------------------------------------------------- route deviation
def _deviation_trip(seed: int = 1) -> tuple[list[Position], datetime, datetime]:
    b = TripBuilder(seed=seed)
    b.leave_town().drive(24_000.0, 80.0)
    b.move_to_offset(1_000.0, 40.0)
    left_at = b.now
    b.off_route(1_000.0, 3_000.0, 60.0)  # a parallel road 1 km away
    b.move_to_offset(0.0, 40.0)
    back_at = b.now
    b.drive(ROUTE_LEN_M, 80.0).stay(60)
    return b.positions, left_at, back_at


def test_route_deviation_raised_once_within_persistence_and_cleared(geo: Geography) -> None:
    positions, left_at, back_at = _deviation_trip()
    ctx = ctx_for(geo, "general")
    result = run(positions, ctx)
    assert result.raised_types() == Counter({"ROUTE_DEVIATION": 1})
    (alarm,) = result.raised("ROUTE_DEVIATION")
    assert alarm.severity == "major"
    # the crossing of corridor + uncertainty happens on the way out, before left_at
    assert alarm.at <= left_at + timedelta(seconds=ctx.profile.deviation_persistence_s)
    assert alarm.detail["distance_m"] > ctx.route.corridor_m
    (cleared,) = result.cleared("ROUTE_DEVIATION")
    assert back_at <= cleared.at <= back_at + timedelta(seconds=ctx.profile.deviation_clear_s + 30)


def test_tighter_profile_raises_deviation_sooner(geo: Geography) -> None:
    positions, _, _ = _deviation_trip(seed=2)
    times = {}
    for credit in ("advanced", "general", "dishonest"):
        (alarm,) = run(positions, ctx_for(geo, credit)).raised("ROUTE_DEVIATION")
        times[credit] = alarm.at
    assert times["dishonest"] < times["general"] < times["advanced"]


def test_short_excursion_shorter_than_persistence_is_not_raised(geo: Geography) -> None:
    b = TripBuilder(seed=4)
    b.leave_town().drive(24_000.0, 80.0).move_to_offset(600.0, 60.0).move_to_offset(0.0, 60.0)
    b.drive(ROUTE_LEN_M, 80.0)
    assert run(b.positions, ctx_for(geo, "advanced")).raised_types() == Counter()


def test_poor_fixes_never_start_a_deviation(geo: Geography) -> None:
    b = TripBuilder(seed=5)
    b.leave_town().drive(24_000.0, 80.0).off_route(1_000.0, 4_000.0, 60.0)
    degraded = [
        p.model_copy(update={"hdop": 9.0, "sats": 3}) if p.fix != "none" and i > 400 else p
        for i, p in enumerate(b.positions)
    ]
    assert run(degraded, ctx_for(geo, "dishonest")).raised("ROUTE_DEVIATION") == []


# ---------------------------------------------------------------- forbidden zone
def test_forbidden_zone_raised_and_cleared(geo: Geography) -> None:
    b = TripBuilder(seed=6)
    b.leave_town().drive(FORBIDDEN_AT, 80.0)
    b.move_to_offset(FORBIDDEN_OFFSET_M, 30.0)
    entered_core = b.now
    b.stay(120)
    b.move_to_offset(0.0, 30.0).drive(ROUTE_LEN_M, 80.0).stay(60)
    ctx = ctx_for(geo, "general")
    result = run(b.positions, ctx)
    (alarm,) = result.raised("FORBIDDEN_ZONE")
    assert alarm.severity == "critical"
    assert alarm.detail["zone_id"] == "Z-FORB"
    assert alarm.at <= entered_core + timedelta(seconds=ctx.profile.zone_persistence_s)
    assert len(result.cleared("FORBIDDEN_ZONE")) == 1
    assert result.raised_types()["ROUTE_DEVIATION"] == 1


# ---------------------------------------------------------------- stops
def test_unplanned_stop_raised_at_limit_and_cleared_on_moving(geo: Geography) -> None:
    b = TripBuilder(seed=8)
    b.leave_town().drive(15_000.0, 80.0)
    stopped_at = b.now
    b.stay(1_200.0)
    moving_at = b.now
    b.drive(ROUTE_LEN_M, 80.0).stay(60)
    ctx = ctx_for(geo, "general")
    result = run(b.positions, ctx)
    assert result.raised_types() == Counter({"UNPLANNED_STOP": 1})
    (alarm,) = result.raised("UNPLANNED_STOP")
    limit = timedelta(seconds=ctx.profile.max_stop_s)
    assert stopped_at + limit <= alarm.at <= stopped_at + limit + timedelta(seconds=10)
    (cleared,) = result.cleared("UNPLANNED_STOP")
    assert moving_at <= cleared.at <= moving_at + timedelta(seconds=30)


def test_stop_in_allowed_stop_zone_is_fine_even_for_dishonest(geo: Geography) -> None:
    b = TripBuilder(seed=9)
    b.leave_town().drive(20_000.0, 80.0).stay(3_600).drive(ROUTE_LEN_M, 80.0)
    assert run(b.positions, ctx_for(geo, "dishonest")).raised_types() == Counter()


def _moved_to(p: Position, s: float, offset: float) -> Position:
    """`p` with its position at chainage `s`, `offset` metres left of the route (as a
    multipath jump, or a fix wandering, would put it)."""
    lon, lat = to_lonlat(*point_at(s, offset))
    return p.model_copy(update={"lon": lon, "lat": lat})


def test_a_stop_zone_halt_whose_first_fix_is_thrown_out_of_the_zone_raises_nothing(
    geo: Geography,
) -> None:
    """Whether a stop is allowed is not decided by its first fix: here multipath puts it
    70 m outside the service area, and every other fix of the hour's rest is inside."""
    b = TripBuilder(seed=9, multipath_rate=0.0)
    b.leave_town().drive(STOP_ZONE_AT, 80.0)
    first = len(b.positions)
    b.stay(3_600).drive(ROUTE_LEN_M, 80.0)
    positions = list(b.positions)
    positions[first] = _moved_to(positions[first], STOP_ZONE_AT, -120.0)  # zone: -50…300
    thrown = positions[first]
    assert thrown.lon is not None and thrown.lat is not None
    assert not geo.zones_at(thrown.lon, thrown.lat)
    assert run(positions, ctx_for(geo, "dishonest")).raised_types()["UNPLANNED_STOP"] == 0


def test_a_truck_parked_beside_a_stop_zone_is_raised_though_fixes_wander_into_it(
    geo: Geography,
) -> None:
    b = TripBuilder(seed=9, multipath_rate=0.0)
    b.leave_town().drive(STOP_ZONE_AT - 1_000, 80.0).drive(STOP_ZONE_AT, 30.0, offset_to=-100.0)
    first = len(b.positions)
    b.stay(1_200).drive(ROUTE_LEN_M, 80.0, offset_to=0.0)
    positions = list(b.positions)
    for i in (first, first + 1, first + 60, first + 200):  # the first slow fix among them
        positions[i] = _moved_to(positions[i], STOP_ZONE_AT, 0.0)
    result = run(positions, ctx_for(geo, "dishonest"))
    assert result.raised_types()["UNPLANNED_STOP"] == 1
    (alarm,) = result.raised("UNPLANNED_STOP")
    limit = timedelta(seconds=DEFAULT_PROFILES["dishonest"].max_stop_s)
    assert alarm.at <= positions[first].ts + limit + timedelta(seconds=10)


# ---------------------------------------------------------------- speed
def test_overspeed_raised_after_persistence_and_cleared(geo: Geography) -> None:
    b = TripBuilder(seed=10)
    b.leave_town().drive(14_000.0, 80.0)
    fast_from = b.now
    b.drive(20_000.0, 125.0)  # ~170 s at 125 km/h
    slow_from = b.now
    b.drive(ROUTE_LEN_M, 85.0)
    ctx = ctx_for(geo, "general")
    result = run(b.positions, ctx)
    assert result.raised_types() == Counter({"OVERSPEED": 1})
    (alarm,) = result.raised("OVERSPEED")
    persistence = timedelta(seconds=ctx.profile.speed_persistence_s)
    assert fast_from + persistence <= alarm.at <= fast_from + persistence + timedelta(seconds=5)
    (cleared,) = result.cleared("OVERSPEED")
    assert slow_from <= cleared.at <= slow_from + timedelta(seconds=ctx.profile.speed_clear_s + 5)


def test_zone_speed_limit_applies_in_town(geo: Geography) -> None:
    b = TripBuilder(seed=11)
    b.stay(30).drive(2_800.0, 80.0)  # town at 80.drive(ROUTE_LEN_M, 80.0)
    result = run(b.positions, ctx_for(geo, "general"))
    (alarm,) = result.raised("OVERSPEED")
    assert alarm.detail["limit_kmh"] == 60


# ---------------------------------------------------------------- GNSS and plausibility
def test_gnss_lost_outside_tunnel_raised_and_cleared(geo: Geography) -> None:
    b = TripBuilder(seed=12)
    b.leave_town().drive(16_000.0, 80.0)
    lost_from = b.now
    b.stay(600.0, no_fix=True)
    back = b.now
    b.drive(ROUTE_LEN_M, 80.0)
    ctx = ctx_for(geo, "general")
    result = run(b.positions, ctx)
    assert result.raised_types() == Counter({"GNSS_LOST": 1})
    (alarm,) = result.raised("GNSS_LOST")
    allowance = timedelta(seconds=ctx.profile.gnss_loss_s)
    assert lost_from + allowance <= alarm.at <= lost_from + allowance + timedelta(seconds=5)
    assert alarm.detail["near_tunnel"] is False
    (cleared,) = result.cleared("GNSS_LOST")
    assert back <= cleared.at <= back + timedelta(seconds=5)


def test_long_tunnel_outage_beyond_tunnel_allowance_is_raised(geo: Geography) -> None:
    b = TripBuilder(seed=13)
    b.leave_town().drive(9_000.0, 80.0)  # inside the tunnel: no fixes from 8 km on
    b.stay(1_000.0, no_fix=True)  # stuck in the tunnel
    result = run(b.positions, ctx_for(geo, "dishonest"))
    (alarm,) = result.raised("GNSS_LOST")
    assert alarm.detail["near_tunnel"] is True
    assert alarm.detail["allowance_s"] == DEFAULT_PROFILES["dishonest"].gnss_loss_tunnel_s


def test_implausible_jump_is_flagged_and_not_followed(geo: Geography) -> None:
    b = TripBuilder(seed=14)
    b.leave_town().drive(6_000.0, 80.0)
    positions = list(b.positions)
    good = positions[-1]
    assert good.lon is not None
    assert good.lat is not None
    spoofed = good.model_copy(
        update={"seq": good.seq + 1, "ts": good.ts + timedelta(seconds=2), "lat": good.lat + 0.05}
    )
    ctx = ctx_for(geo, "general")
    state = TripState()
    for p in positions:
        state, _ = evaluate(state, p, ctx)
    before = state.last_fix
    state, effects = evaluate(state, spoofed, ctx)
    assert [e.alarm_type for e in effects] == ["POSITION_IMPLAUSIBLE"]
    assert effects[0].severity == "major"  # type: ignore[union-attr]
    assert state.last_fix == before  # not followed
    # the real track continues; nothing else is raised
    b.drive(ROUTE_LEN_M, 80.0)
    rest = [p for p in b.positions[len(positions) :] if p.ts > spoofed.ts]
    effects = []
    for p in rest:
        state, out = evaluate(state, p, ctx)
        effects += out
    assert effects == []


def test_consistent_new_track_is_adopted_after_rebase_count(geo: Geography) -> None:
    ctx = ctx_for(geo, "general")
    b = TripBuilder(seed=15, multipath_rate=0.0)
    b.leave_town().drive(3_000.0, 60.0)
    state = TripState()
    for p in b.positions:
        state, _ = evaluate(state, p, ctx)
    last = b.positions[-1]
    assert last.lat is not None
    raised = 0
    for i in range(1, ctx.profile.rebase_fixes + 1):
        shifted = last.model_copy(
            update={
                "seq": last.seq + i,
                "ts": last.ts + timedelta(seconds=2 * i),
                "lat": last.lat + 0.2,
            }
        )
        state, out = evaluate(state, shifted, ctx)
        raised += sum(1 for e in out if e.alarm_type == "POSITION_IMPLAUSIBLE")
    assert raised == 1
    assert state.last_fix is not None
    assert state.last_fix.lat == pytest.approx(last.lat + 0.2)


# ---------------------------------------------------------------- lock
def test_lock_incidents(geo: Geography) -> None:
    ctx = ctx_for(geo, "general")
    b = TripBuilder(seed=16)
    b.leave_town().drive(12_000.0 + 4_000.0, 80.0)
    state = TripState()
    for p in b.positions:
        state, _ = evaluate(state, p, ctx)
    t = b.now
    seq = 100_000

    def feed(report: LockReport) -> list[Effect]:
        nonlocal state
        state, out = evaluate(state, report, ctx)
        return [e for e in out if e.alarm_type.startswith("LOCK_")]

    assert (
        feed(lock(seq, t + timedelta(seconds=1), battery=24.0))[0].alarm_type == "LOCK_LOW_BATTERY"
    )
    assert feed(lock(seq + 1, t + timedelta(seconds=2), battery=23.0)) == []  # still low: no repeat
    assert [e.alarm_type for e in feed(lock(seq + 2, t + timedelta(seconds=3), battery=31.0))] == [
        "LOCK_LOW_BATTERY"
    ]
    assert isinstance(feed(lock(seq + 3, t + timedelta(seconds=4), battery=10.0))[0], Raise)
    # wrong passwords: the third within 10 minutes raises, the fourth repeats
    outs = [
        feed(
            lock(
                seq + 10 + i,
                t + timedelta(seconds=10 + 60 * i),
                event="wrong_password",
                battery=10.0,
            )
        )
        for i in range(4)
    ]
    assert [len(o) for o in outs] == [0, 0, 1, 1]
    assert outs[2][0].alarm_type == "LOCK_WRONG_PASSWORD"
    # rope cut: tamper
    out = feed(lock(seq + 20, t + timedelta(seconds=400), event="rope_cut", battery=10.0))
    assert [(e.alarm_type, e.severity) for e in out if isinstance(e, Raise)] == [
        ("LOCK_TAMPER", "critical")
    ]
    # opened on the road: shackle opened while sealed → tamper and opened
    out = feed(
        lock(
            seq + 21, t + timedelta(seconds=401), state="open", event="shackle_opened", battery=10.0
        )
    )
    assert sorted(e.alarm_type for e in out) == ["LOCK_OPENED", "LOCK_TAMPER"]
    # a further status report of the open lock is no new opening
    assert feed(lock(seq + 22, t + timedelta(seconds=460), state="open", battery=10.0)) == []


def test_unseal_inside_destination_site_is_fine_outside_is_not(geo: Geography) -> None:
    ctx = ctx_for(geo, "general")
    dest = geo.site("S-DEST").polygon.centroid
    inside = lock(1, T0, state="unsealed", event="unsealed", lat=dest.y, lon=dest.x)
    _, out = evaluate(TripState(), inside, ctx)
    assert out == []
    outside = lock(1, T0, state="unsealed", event="unsealed", lat=dest.y - 0.05, lon=dest.x)
    _, out = evaluate(TripState(), outside, ctx)
    assert [e.alarm_type for e in out] == ["LOCK_OPENED"]
    # no position at all counts as outside
    _, out = evaluate(TripState(), lock(1, T0, state="unsealed", event="unsealed"), ctx)
    assert [e.alarm_type for e in out] == ["LOCK_OPENED"]


# ---------------------------------------------------------------- device, overdue
def test_device_offline_by_last_will_and_by_silence(geo: Geography) -> None:
    ctx = ctx_for(geo, "general")
    state = TripState()
    state, out = evaluate(state, Availability(node_id="T1", seq=1, ts=T0, state="offline"), ctx)
    assert [(e.alarm_type, e.severity) for e in out if isinstance(e, Raise)] == [
        ("DEVICE_OFFLINE", "major")
    ]
    state, out = evaluate(
        state, Availability(node_id="T1", seq=2, ts=T0 + timedelta(seconds=60), state="online"), ctx
    )
    assert [type(e).__name__ for e in out] == ["Clear"]
    # silence: ticks at server time
    state, out = tick(state, T0 + timedelta(seconds=60 + ctx.profile.silence_s - 1), ctx)
    assert out == []
    state, out = tick(state, T0 + timedelta(seconds=60 + ctx.profile.silence_s + 1), ctx)
    assert [e.alarm_type for e in out] == ["DEVICE_OFFLINE"]
    state, out = tick(state, T0 + timedelta(seconds=60 + ctx.profile.silence_s + 100), ctx)
    assert out == []  # still the same alarm, no flood
    # replayed backlog does not clear; a live message does
    replayed = Position(
        node_id="T1", seq=3, ts=T0 + timedelta(seconds=90), fix="none", replayed=True
    )
    state, out = evaluate(state, replayed, ctx)
    assert [e for e in out if e.alarm_type == "DEVICE_OFFLINE"] == []
    live = Position(node_id="T1", seq=4, ts=T0 + timedelta(seconds=400), fix="none")
    state, out = evaluate(state, live, ctx)
    assert "DEVICE_OFFLINE" in [e.alarm_type for e in out if isinstance(e, Clear)]


def test_timers_are_dated_when_they_fell_due_whoever_finds_them(geo: Geography) -> None:
    """A tick late by minutes, or a judge that finds the silence only when the gateway is
    heard again, date DEVICE_OFFLINE and TRANSIT_OVERDUE alike: when the silence became
    longer than allowed, at the deadline. (The alarm sink then keeps one of each.)"""
    ctx = ctx_for(geo, "general", time_limit_s=3600)
    silence = timedelta(seconds=ctx.profile.silence_s)
    heard = T0 + timedelta(seconds=100)
    assert device.silence_due(TripState().device, ctx, heard) == heard + silence
    late = T0 + timedelta(hours=3)
    _, out = tick(TripState(), late, ctx, heard)
    assert [(e.alarm_type, e.at) for e in out] == [
        ("DEVICE_OFFLINE", heard + silence),
        ("TRANSIT_OVERDUE", T0 + timedelta(seconds=3600)),
    ]
    found = device.silence_ended(TripState().device, ctx, heard, late, late)
    assert [(type(e).__name__, e.alarm_type, e.at) for e in found] == [
        ("Raise", "DEVICE_OFFLINE", heard + silence),
        ("Clear", "DEVICE_OFFLINE", late),
    ]
    # not longer than allowed, or already raised: nothing
    assert device.silence_ended(TripState().device, ctx, heard, heard + silence, late) == []
    offline = DeviceState(heard, True)
    assert device.silence_ended(offline, ctx, heard, late, late) == []


def test_a_silence_begun_before_the_trip_is_dated_at_its_start(geo: Geography) -> None:
    """The vehicle's last message may be of its trip before: silent since then, it is
    DEVICE_OFFLINE from its departure on, not before the trip began."""
    ctx = ctx_for(geo, "general")
    before_the_trip = T0 - timedelta(hours=2)
    _, out = tick(TripState(), T0 + timedelta(seconds=10), ctx, before_the_trip)
    assert [(e.alarm_type, e.at) for e in out] == [("DEVICE_OFFLINE", T0)]
    found = device.silence_ended(TripState().device, ctx, before_the_trip, T0, T0)
    assert [(type(e).__name__, e.at) for e in found] == [("Raise", T0), ("Clear", T0)]


def test_transit_overdue_raised_once(geo: Geography) -> None:
    ctx = ctx_for(geo, "general", time_limit_s=3600)
    state = TripState()
    state, out = tick(state, T0 + timedelta(seconds=3599), ctx)
    assert [e for e in out if e.alarm_type == "TRANSIT_OVERDUE"] == []
    state, out = tick(state, T0 + timedelta(seconds=3601), ctx)
    assert [e.alarm_type for e in out if e.alarm_type == "TRANSIT_OVERDUE"] == ["TRANSIT_OVERDUE"]
    state, out = tick(state, T0 + timedelta(seconds=4000), ctx)
    assert [e for e in out if e.alarm_type == "TRANSIT_OVERDUE"] == []


def test_evaluate_does_not_mutate_state(geo: Geography) -> None:
    ctx = ctx_for(geo, "general")
    positions = clean_trip(seed=1)[:50]
    state = TripState()
    for p in positions:
        state, _ = evaluate(state, p, ctx)
    snapshot = state
    again, _ = evaluate(
        state, positions[-1].model_copy(update={"ts": positions[-1].ts + timedelta(seconds=2)}), ctx
    )
    assert state is snapshot
    assert again is not state

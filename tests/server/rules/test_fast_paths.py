"""The per-fix shortcuts of the rules give what the plain forms they replace gave.

Each shortcut (a state kept when nothing changed, a constructor instead of
`dataclasses.replace`, a value worked out once per trip, a list not built when there is
nothing to put in it) is compared with the plain form on random inputs.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from server.geo import Geography
from server.rules import DEFAULT_PROFILES
from server.rules.alarms import Effect, clear
from server.rules.device import heard
from server.rules.inputs import Fix, Observation, TripContext
from server.rules.speed import speed_limit_kmh
from server.rules.state import DeviceState
from tests.server.rules.trajectory import ROUTE_LEN_M, point_at, to_lonlat

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
_SECONDS = st.integers(min_value=0, max_value=10_000)


def _heard_plainly(st_: DeviceState, at: datetime, live: bool) -> tuple[DeviceState, list[Effect]]:
    """`device.heard` as it read before its shortcut: always `dataclasses.replace`."""
    last = at if st_.last_heard_at is None else max(st_.last_heard_at, at)
    if st_.active and live:
        return DeviceState(last, False), [clear("DEVICE_OFFLINE", at, reason="message received")]
    return replace(st_, last_heard_at=last), []


@settings(max_examples=500, deadline=None)
@given(
    last_s=st.none() | _SECONDS,
    active=st.booleans(),
    at_s=_SECONDS,
    live=st.booleans(),
)
def test_heard_gives_what_replace_gave(
    last_s: int | None, active: bool, at_s: int, live: bool
) -> None:
    last = None if last_s is None else T0 + timedelta(seconds=last_s)
    state = DeviceState(last, active)
    at = T0 + timedelta(seconds=at_s)
    new, effects = heard(state, at, live)
    assert (new, effects) == _heard_plainly(state, at, live)
    assert new.last_heard_at == (at if last is None else max(last, at))


def test_heard_keeps_the_state_when_nothing_is_newer() -> None:
    state = DeviceState(T0 + timedelta(seconds=10), False)
    new, effects = heard(state, T0, live=True)
    assert new is state
    assert effects == []


@settings(max_examples=200, deadline=None)
@given(
    started_s=st.none() | _SECONDS,
    limit_s=st.none() | st.floats(min_value=0.0, max_value=1e6),
    credit=st.sampled_from(sorted(DEFAULT_PROFILES)),
)
def test_deadline_is_start_plus_limit_plus_grace(
    geo: Geography, started_s: int | None, limit_s: float | None, credit: str
) -> None:
    profile = DEFAULT_PROFILES[credit]  # type: ignore[index]
    started = None if started_s is None else T0 + timedelta(seconds=started_s)
    ctx = TripContext(geo, "R-SZ-DG", profile, started_at=started, time_limit_s=limit_s)
    if started is None or limit_s is None:
        assert ctx.deadline is None
    else:
        grace = profile.overdue_grace_s
        assert ctx.deadline == started + timedelta(seconds=limit_s + grace)
    assert replace(ctx, time_limit_s=None).deadline is None  # worked out again on a copy


def _limit_plainly(obs: Observation) -> float:
    """`speed_limit_kmh` as it read before its shortcut: the list built for every fix."""
    limits = [obs.ctx.profile.speed_limit_kmh]
    limits.extend(z.max_speed_kmh for z in obs.zones if z.max_speed_kmh is not None)
    return min(limits)


@settings(max_examples=300, deadline=None)
@given(
    s=st.floats(min_value=0.0, max_value=4_000.0) | st.floats(min_value=0.0, max_value=ROUTE_LEN_M),
    offset=st.floats(min_value=-2_000.0, max_value=2_000.0),
)
def test_speed_limit_gives_what_the_full_list_gave(geo: Geography, s: float, offset: float) -> None:
    ctx = TripContext(geo, "R-SZ-DG", DEFAULT_PROFILES["general"])
    lon, lat = to_lonlat(*point_at(s, offset))
    obs = Observation(Fix(T0, lon, lat, speed_kmh=70.0, sats=10, hdop=1.0), ctx)
    assert speed_limit_kmh(obs) == _limit_plainly(obs)


def test_speed_limit_in_town_is_the_towns(geo: Geography) -> None:
    ctx = TripContext(geo, "R-SZ-DG", DEFAULT_PROFILES["general"])
    inside = Observation(Fix(T0, *to_lonlat(*point_at(1_000.0))), ctx)
    outside = Observation(Fix(T0, *to_lonlat(*point_at(10_000.0, 1_000.0))), ctx)
    assert speed_limit_kmh(inside) == 60
    assert speed_limit_kmh(outside) == DEFAULT_PROFILES["general"].speed_limit_kmh

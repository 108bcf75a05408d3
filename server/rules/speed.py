"""OVERSPEED: over the limit (+ tolerance) for `speed_persistence_s`.

The limit is the profile's, lowered by the `max_speed_kmh` of any zone the truck is in.
Under the limit for `speed_clear_s` clears. A gap between fixes longer than
`speed_max_gap_s` restarts the timers (nothing is known about the speed in between).
"""

from __future__ import annotations

from dataclasses import replace

from server.rules.alarms import Effect, clear, raise_
from server.rules.inputs import Observation
from server.rules.state import SpeedState


def speed_limit_kmh(obs: Observation) -> float:
    limit = obs.ctx.profile.speed_limit_kmh
    zones = obs.zones
    if not zones:  # most fixes: no zone, no list to build
        return limit
    limits = [limit]
    limits.extend(z.max_speed_kmh for z in zones if z.max_speed_kmh is not None)
    return min(limits)


def check_speed(st: SpeedState, obs: Observation) -> tuple[SpeedState, list[Effect]]:
    speed = obs.fix.speed_kmh
    if speed is None:
        return st, []
    p = obs.ctx.profile
    ts = obs.fix.ts
    if st.last_ts is not None and (ts - st.last_ts).total_seconds() > p.speed_max_gap_s:
        st = SpeedState(None, None, ts, st.active, st.max_kmh)
    else:
        st = SpeedState(st.over_since, st.under_since, ts, st.active, st.max_kmh)
    limit = speed_limit_kmh(obs)
    over = speed > limit + p.speed_tolerance_kmh
    if not st.active:
        if not over:
            return (st if st.over_since is None else SpeedState(last_ts=ts)), []
        since = st.over_since or ts
        top = max(st.max_kmh, speed)
        if (ts - since).total_seconds() >= p.speed_persistence_s:
            effect = raise_(
                "OVERSPEED",
                ts,
                (obs.lon, obs.lat),
                speed_kmh=round(speed, 1),
                limit_kmh=limit,
                over_since=since.isoformat(),
            )
            return replace(st, over_since=None, under_since=None, active=True, max_kmh=top), [
                effect
            ]
        return replace(st, over_since=since, max_kmh=top), []
    if over:
        return replace(st, under_since=None, max_kmh=max(st.max_kmh, speed)), []
    since = st.under_since or ts
    if (ts - since).total_seconds() >= p.speed_clear_s:
        cleared = clear("OVERSPEED", ts, max_speed_kmh=round(st.max_kmh, 1))
        return SpeedState(last_ts=ts), [cleared]
    return replace(st, under_since=since), []

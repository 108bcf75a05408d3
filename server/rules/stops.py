"""UNPLANNED_STOP: stopped longer than `max_stop_s` outside allowed stop zones and end sites.

A stop begins at a fix at or under `stop_speed_kmh`; its anchor is that position. It lasts
while the truck stays within `stop_radius_m` (+ the fix uncertainty) of the anchor — GNSS
wander and multipath jumps of a parked truck stay inside that — and ends when a usable fix
lies farther away, which clears the alarm. A gap without fixes does not end a stop.

Whether the stop is in an allowed place is decided by most of its usable fixes, not by
its first: a truck that halts in a service area can have its first slow fix thrown 70 m
out of the zone by multipath (seen in the rules' property test), and a truck parked just
outside a zone still has a fix wander into it now and then.
"""

from __future__ import annotations

from dataclasses import replace

from server.rules.alarms import Effect, clear, raise_
from server.rules.inputs import Observation, ground_distance_m
from server.rules.state import StopState


def _allowed_here(obs: Observation) -> bool:
    return obs.in_end_site or any(z.kind == "stop" for z in obs.zones)


def _counted(st: StopState, obs: Observation) -> StopState:
    if _allowed_here(obs):
        return replace(st, allowed_fixes=st.allowed_fixes + 1)
    return replace(st, other_fixes=st.other_fixes + 1)


def check_stop(st: StopState, obs: Observation) -> tuple[StopState, list[Effect]]:
    p = obs.ctx.profile
    ts = obs.fix.ts
    here = (obs.lon, obs.lat)
    slow = obs.fix.speed_kmh is not None and obs.fix.speed_kmh <= p.stop_speed_kmh
    if st.anchor is None or st.since is None:
        if slow and obs.usable:
            return _counted(StopState(here, ts), obs), []
        return st, []
    moved = ground_distance_m(st.anchor, here)
    if obs.usable and moved > p.stop_radius_m + obs.uncertainty_m:
        effects: list[Effect] = []
        if st.active:
            effects.append(
                clear("UNPLANNED_STOP", ts, stopped_s=round((ts - st.since).total_seconds()))
            )
        if slow:
            return _counted(StopState(here, ts), obs), effects
        return StopState(), effects
    if st.active:
        return st, []
    since, anchor = st.since, st.anchor
    if obs.usable:
        st = _counted(st, obs)
    if st.allowed:
        return st, []
    duration = (ts - since).total_seconds()
    if duration >= p.max_stop_s:
        effect = raise_(
            "UNPLANNED_STOP",
            ts,
            anchor,
            stopped_since=since.isoformat(),
            stopped_s=round(duration),
            max_stop_s=p.max_stop_s,
        )
        return replace(st, active=True), [effect]
    return st, []

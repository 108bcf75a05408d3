"""ROUTE_DEVIATION: outside the corridor, beyond the fix uncertainty, for the persistence time.

Hysteresis in space: a fix counts as *outside* only when even its uncertainty circle is
(distance − k·HDOP·UERE > corridor), and as *inside* when its position is within the
corridor; between the two nothing changes. Hysteresis in time: outside for
`deviation_persistence_s` raises, inside for `deviation_clear_s` clears. Fixes with too few
satellites or a high HDOP are ignored. Inside the route's end sites counts as inside.
"""

from __future__ import annotations

from dataclasses import replace

from server.rules.alarms import Effect, clear, raise_
from server.rules.inputs import Observation
from server.rules.state import DeviationState


def check_deviation(st: DeviationState, obs: Observation) -> tuple[DeviationState, list[Effect]]:
    if not obs.usable:
        return st, []
    p = obs.ctx.profile
    ts = obs.fix.ts
    excess = obs.distance_m - obs.corridor_m
    outside = excess > obs.uncertainty_m and not obs.in_end_site
    inside = excess <= 0.0 or (excess <= obs.uncertainty_m and obs.in_end_site)
    if not st.active:
        if outside:
            since = st.outside_since or ts
            worst = max(st.max_excess_m, excess)
            if (ts - since).total_seconds() >= p.deviation_persistence_s:
                effect = raise_(
                    "ROUTE_DEVIATION",
                    ts,
                    (obs.lon, obs.lat),
                    route_id=obs.ctx.route_id,
                    distance_m=round(obs.distance_m, 1),
                    corridor_m=round(obs.corridor_m, 1),
                    outside_since=since.isoformat(),
                )
                return DeviationState(None, None, True, worst), [effect]
            return replace(st, outside_since=since, max_excess_m=worst), []
        if inside and st.outside_since is not None:
            return DeviationState(), []
        return st, []
    if inside:
        since = st.inside_since or ts
        if (ts - since).total_seconds() >= p.deviation_clear_s:
            cleared = clear(
                "ROUTE_DEVIATION",
                ts,
                back_inside_since=since.isoformat(),
                max_distance_beyond_corridor_m=round(st.max_excess_m, 1),
            )
            return DeviationState(), [cleared]
        return replace(st, inside_since=since), []
    if outside:
        return replace(st, inside_since=None, max_excess_m=max(st.max_excess_m, excess)), []
    return st, []

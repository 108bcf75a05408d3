"""FORBIDDEN_ZONE: deeper inside a forbidden zone than the fix uncertainty, for a while.

Raised after `zone_persistence_s` inside (each fix more than k·HDOP·UERE from the zone's
edge); cleared after `zone_clear_s` in no forbidden zone at all. Poor fixes are ignored.
"""

from __future__ import annotations

from dataclasses import replace

from server.rules.alarms import Effect, clear, raise_
from server.rules.inputs import Observation
from server.rules.state import ZoneState

#: No forbidden zone entered (immutable, so one instance serves every trip and fix).
_CLEAR = ZoneState()


def check_forbidden_zones(st: ZoneState, obs: Observation) -> tuple[ZoneState, list[Effect]]:
    if not obs.usable:
        return st, []
    p = obs.ctx.profile
    ts = obs.fix.ts
    forbidden = [z for z in obs.zones if z.kind == "forbidden"]
    deep = [z for z in forbidden if z.depth_m(obs.lon, obs.lat) > obs.uncertainty_m]
    if not st.active:
        if deep:
            since = st.inside_since or ts
            if (ts - since).total_seconds() >= p.zone_persistence_s:
                zone = deep[0]
                effect = raise_(
                    "FORBIDDEN_ZONE",
                    ts,
                    (obs.lon, obs.lat),
                    zone_id=zone.zone_id,
                    zone_name=zone.name,
                    inside_since=since.isoformat(),
                )
                return ZoneState(None, None, zone.zone_id, True), [effect]
            return replace(st, inside_since=since), []
        if not forbidden:
            return _CLEAR, []
        return st, []
    if not forbidden:
        since = st.outside_since or ts
        if (ts - since).total_seconds() >= p.zone_clear_s:
            return _CLEAR, [clear("FORBIDDEN_ZONE", ts, zone_id=st.zone_id)]
        return replace(st, outside_since=since), []
    return replace(st, outside_since=None), []

"""POSITION_IMPLAUSIBLE: a jump implying an impossible speed (jamming or spoofing suspected).

A fix is implausible when its distance from the last accepted fix, less
`jump_allowance_m` and both fixes' uncertainty (multipath jumps of tens of metres pass),
needs more than `implausible_speed_kmh`. It is flagged and *not followed*: the trip keeps
its accepted position and no other rule sees the fix. The first rejected fix of a run
raises (later ones of the same run do not). When `rebase_fixes` rejected fixes in a row
agree with each other, they become the accepted track (a receiver that was wrong before);
the alarm stays for an officer to clear.
"""

from __future__ import annotations

from dataclasses import dataclass

from server.rules.alarms import Effect, raise_
from server.rules.inputs import Fix, fix_uncertainty_m, ground_distance_m
from server.rules.profiles import CreditProfile
from server.rules.state import PlausibilityState


def is_plausible(prev: Fix, fix: Fix, p: CreditProfile) -> tuple[bool, float, float]:
    """(plausible, distance_m, implied_kmh) of moving from `prev` to `fix`."""
    dt = max((fix.ts - prev.ts).total_seconds(), 0.0)
    d = ground_distance_m(prev.lonlat, fix.lonlat)
    slack = p.jump_allowance_m + fix_uncertainty_m(prev, p) + fix_uncertainty_m(fix, p)
    implied = d / dt * 3.6 if dt > 0 else float("inf")
    return d - slack <= p.implausible_speed_kmh / 3.6 * dt, d, implied


#: The state after an accepted fix (immutable, so one instance serves every trip).
_CLEAN = PlausibilityState()


@dataclass(frozen=True, slots=True)
class PlausibilityVerdict:
    accept: bool
    state: PlausibilityState
    effects: list[Effect]


def check_plausibility(
    st: PlausibilityState, last: Fix | None, fix: Fix, p: CreditProfile
) -> PlausibilityVerdict:
    if last is None:
        return PlausibilityVerdict(True, _CLEAN, [])
    ok, dist, implied = is_plausible(last, fix, p)
    if ok:
        return PlausibilityVerdict(True, _CLEAN, [])
    consistent = 1
    if st.candidate is not None and is_plausible(st.candidate, fix, p)[0]:
        consistent = st.consistent + 1
    if consistent >= p.rebase_fixes:
        return PlausibilityVerdict(True, _CLEAN, [])
    effects: list[Effect] = []
    if st.rejected == 0:
        effects.append(
            raise_(
                "POSITION_IMPLAUSIBLE",
                fix.ts,
                fix.lonlat,
                jump_m=round(dist, 1),
                implied_speed_kmh=round(implied, 1) if implied != float("inf") else None,
                accepted_position=list(last.lonlat),
                accepted_at=last.ts.isoformat(),
            )
        )
    return PlausibilityVerdict(False, PlausibilityState(fix, consistent, st.rejected + 1), effects)

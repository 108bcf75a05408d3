"""Lock rules: LOCK_OPENED, LOCK_TAMPER, LOCK_LOW_BATTERY, LOCK_WRONG_PASSWORD.

- LOCK_OPENED: a lock goes from sealed to unsealed/open (state or `unsealed` event)
  anywhere but inside the destination site (within `lock_site_margin_m`). Where: the
  report's own lat/lon, else the trip's last accepted fix; unknown counts as outside.
- LOCK_TAMPER: `rope_cut`, `shell_tampered`, or `shackle_opened` while sealed. Each one
  is raised (repeats count).
- LOCK_LOW_BATTERY: battery under the floor; cleared over floor + margin.
- LOCK_WRONG_PASSWORD: `wrong_password_count` wrong passwords within the window; each
  further one in the window repeats.
Opened and tamper alarms are never cleared by a rule: an officer closes them.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from contract.payloads import LockReport
from server.rules.alarms import Effect, clear, raise_
from server.rules.inputs import Fix, TripContext
from server.rules.state import LockRuleState

_TAMPER_EVENTS = frozenset({"rope_cut", "shell_tampered"})


def check_lock(
    st: LockRuleState, report: LockReport, last_fix: Fix | None, ctx: TripContext
) -> tuple[LockRuleState, list[Effect]]:
    p = ctx.profile
    ts = report.ts
    effects: list[Effect] = []
    pos: tuple[float, float] | None = None
    if report.lon is not None and report.lat is not None:
        pos = (report.lon, report.lat)
    elif last_fix is not None:
        pos = last_fix.lonlat
    before = st.lock_state(report.lock_id)

    if report.event in _TAMPER_EVENTS or (report.event == "shackle_opened" and before == "sealed"):
        effects.append(raise_("LOCK_TAMPER", ts, pos, lock_id=report.lock_id, event=report.event))

    opening = report.state in ("unsealed", "open") or report.event == "unsealed"
    if opening and before == "sealed":
        dest = ctx.route.destination_site_id
        at_destination = (
            pos is not None
            and dest is not None
            and ctx.geography.inside_site(dest, pos[0], pos[1], margin_m=p.lock_site_margin_m)
        )
        if not at_destination:
            effects.append(
                raise_(
                    "LOCK_OPENED",
                    ts,
                    pos,
                    lock_id=report.lock_id,
                    event=report.event,
                    state=report.state,
                    position_known=pos is not None,
                )
            )
    new_state = report.state
    if report.state == "unknown":
        new_state = "unsealed" if opening else before
    st = replace(st, lock_states=st.with_lock_state(report.lock_id, new_state))

    if report.battery_pct is not None:
        low = set(st.low_battery)
        was_any = bool(low)
        if report.battery_pct < p.battery_floor_pct:
            if report.lock_id not in low:
                effects.append(
                    raise_(
                        "LOCK_LOW_BATTERY",
                        ts,
                        pos,
                        lock_id=report.lock_id,
                        battery_pct=report.battery_pct,
                        floor_pct=p.battery_floor_pct,
                    )
                )
            low.add(report.lock_id)
        elif report.battery_pct >= p.battery_floor_pct + p.battery_clear_margin_pct:
            low.discard(report.lock_id)
            if was_any and not low:
                effects.append(
                    clear(
                        "LOCK_LOW_BATTERY",
                        ts,
                        lock_id=report.lock_id,
                        battery_pct=report.battery_pct,
                    )
                )
        st = replace(st, low_battery=frozenset(low))

    if report.event == "wrong_password":
        window_start = ts - timedelta(seconds=p.wrong_password_window_s)
        recent = (*(t for t in st.wrong_passwords if t > window_start), ts)
        st = replace(st, wrong_passwords=recent)
        if len(recent) >= p.wrong_password_count:
            effects.append(
                raise_(
                    "LOCK_WRONG_PASSWORD",
                    ts,
                    pos,
                    lock_id=report.lock_id,
                    count_in_window=len(recent),
                    window_s=p.wrong_password_window_s,
                )
            )
    return st, effects

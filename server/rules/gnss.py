"""GNSS_LOST: no valid fix for longer than allowed, judged on the device's own times.

The gap runs from the last valid fix to the newest thing the gateway sent (a `none` fix,
a lock report, …): a silent gateway is DEVICE_OFFLINE, not GNSS_LOST. The allowance is
`gnss_loss_tunnel_s` when the last valid fix lay in or within `tunnel_approach_m` of a
tunnel zone, `gnss_loss_s` otherwise. A valid fix clears.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from server.rules.alarms import Effect, clear, raise_
from server.rules.inputs import Fix, TripContext
from server.rules.state import GnssState


def on_valid_fix(st: GnssState, fix: Fix) -> tuple[GnssState, list[Effect]]:
    effects: list[Effect] = []
    if st.active:
        lost_s = (fix.ts - st.last_valid_at).total_seconds() if st.last_valid_at else None
        effects.append(clear("GNSS_LOST", fix.ts, lost_s=lost_s))
    return GnssState(fix.ts, fix.lonlat, None, False), effects


def check_gnss_gap(
    st: GnssState, heard_at: datetime, ctx: TripContext
) -> tuple[GnssState, list[Effect]]:
    """Called whenever the gateway is heard from without a valid fix."""
    if st.active:
        return st, []
    if st.last_valid_at is None:
        # No fix yet on this trip: count from the trip's start, or from now on.
        if ctx.started_at is None or heard_at < ctx.started_at:
            return replace(st, last_valid_at=heard_at), []
        st = replace(st, last_valid_at=ctx.started_at)
    last_valid_at = st.last_valid_at
    if last_valid_at is None:
        return st, []
    gap = (heard_at - last_valid_at).total_seconds()
    p = ctx.profile
    if gap <= p.gnss_loss_s:
        return st, []
    near_tunnel = st.near_tunnel
    if near_tunnel is None:
        near_tunnel = st.last_valid_pos is not None and bool(
            ctx.geography.zones_near(*st.last_valid_pos, p.tunnel_approach_m, kind="tunnel")
        )
        st = replace(st, near_tunnel=near_tunnel)
    allowance = p.gnss_loss_tunnel_s if near_tunnel else p.gnss_loss_s
    if gap <= allowance:
        return st, []
    effect = raise_(
        "GNSS_LOST",
        heard_at,
        st.last_valid_pos,
        last_valid_fix_at=last_valid_at.isoformat(),
        lost_s=round(gap),
        allowance_s=allowance,
        near_tunnel=near_tunnel,
    )
    return replace(st, active=True), [effect]

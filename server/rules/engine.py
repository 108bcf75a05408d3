"""The one entry point: run every rule on one event, or on a timer tick.

`evaluate(state, event, ctx)` takes the trip's state and one input — a
`contract.payloads.Position` (or an already-converted `Fix`), a `LockReport`, an
`Availability`, or any other edge message (which only counts as "heard from") — and
returns the new state and the effects. Feed events in their own time order (`ts`); the
rules measure persistence on those times only. `tick(state, now, ctx)` runs the timers
that need a clock: gateway silence and the transit time limit.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime

from contract.payloads import Availability, EdgeMessage, LockReport, Position
from server.rules import device, gnss
from server.rules.alarms import Effect
from server.rules.deviation import check_deviation
from server.rules.inputs import Fix, Observation, TripContext
from server.rules.lock import check_lock
from server.rules.lock_auth import check_lock_auth
from server.rules.overdue import check_overdue
from server.rules.plausibility import check_plausibility
from server.rules.speed import check_speed
from server.rules.state import TripState
from server.rules.stops import check_stop
from server.rules.zones import check_forbidden_zones

log = logging.getLogger(__name__)

Event = Position | Fix | LockReport | Availability | EdgeMessage


def evaluate(state: TripState, event: Event, ctx: TripContext) -> tuple[TripState, list[Effect]]:
    """Run every rule on one event. Pure: `state` is not changed."""
    effects: list[Effect] = []
    if isinstance(event, Position):
        event = Fix.from_position(event)
    if isinstance(event, Fix):
        state = _on_fix(state, event, ctx, effects)
        at = event.ts
    elif isinstance(event, Availability):
        dev, out = device.on_availability(state.device, event.state, event.ts)
        state = replace(state, device=dev)
        effects += out
        at = event.ts
    else:
        dev, out = device.heard(state.device, event.ts, live=not getattr(event, "replayed", False))
        effects += out
        g, out = gnss.check_gnss_gap(state.gnss, event.ts, ctx)
        effects += out
        state = replace(state, device=dev, gnss=g)
        if isinstance(event, LockReport):
            state = _on_lock_report(state, event, ctx, effects)
        at = event.ts
    raised, out = check_overdue(state.overdue_raised, at, ctx)
    if out:
        state = replace(state, overdue_raised=raised)
        effects += out
    return state, effects


def tick(
    state: TripState, now: datetime, ctx: TripContext, last_received_at: datetime | None = None
) -> tuple[TripState, list[Effect]]:
    """Timer rules at server time `now`: DEVICE_OFFLINE by silence since the server last
    received a message of the gateway (`last_received_at`), TRANSIT_OVERDUE."""
    effects: list[Effect] = []
    dev, out = device.check_silence(state.device, now, ctx, last_received_at)
    effects += out
    raised, out2 = check_overdue(state.overdue_raised, now, ctx)
    effects += out2
    if dev is not state.device or raised != state.overdue_raised:
        state = replace(state, device=dev, overdue_raised=raised)
    return state, effects


def clears_silence(msg: EdgeMessage) -> bool:
    """Whether `evaluate` takes the message as the gateway heard from live (which clears
    DEVICE_OFFLINE): anything not replayed from its outbox, but availability other than
    `online`."""
    if isinstance(msg, Availability):
        return msg.state == "online"
    return not getattr(msg, "replayed", False)


def _on_lock_report(
    state: TripState, report: LockReport, ctx: TripContext, effects: list[Effect]
) -> TripState:
    """Authenticate the report first; only a believed report reaches the lock rules."""
    pos: tuple[float, float] | None = None
    if report.lon is not None and report.lat is not None:
        pos = (report.lon, report.lat)
    elif state.last_fix is not None and state.last_fix.valid:
        pos = state.last_fix.lonlat
    auth, out, believed = check_lock_auth(
        state.lock_auth, report, ctx.lock_secrets.get(report.lock_id), pos
    )
    effects += out
    if not believed:
        return state
    lk, out = check_lock(state.lock, report, state.last_fix, ctx)
    effects += out
    return replace(state, lock=lk, lock_auth=auth)


def _on_fix(state: TripState, fix: Fix, ctx: TripContext, effects: list[Effect]) -> TripState:
    dev, out = device.heard(state.device, fix.ts, live=not fix.replayed)
    effects += out
    if not fix.valid:
        g, out = gnss.check_gnss_gap(state.gnss, fix.ts, ctx)
        effects += out
        return replace(state, device=dev, gnss=g)
    last = state.last_fix
    if last is not None and fix.ts <= last.ts:
        log.debug("trip %s: fix at %s not after %s, skipped", ctx.trip_id, fix.ts, last.ts)
        return replace(state, device=dev)
    verdict = check_plausibility(state.plausibility, last, fix, ctx.profile)
    effects += verdict.effects
    if not verdict.accept:
        return replace(state, device=dev, plausibility=verdict.state)
    g, out = gnss.on_valid_fix(state.gnss, fix)
    effects += out
    obs = Observation(fix, ctx)
    dv, out = check_deviation(state.deviation, obs)
    effects += out
    zn, out = check_forbidden_zones(state.zone, obs)
    effects += out
    sp, out = check_stop(state.stop, obs)
    effects += out
    sd, out = check_speed(state.speed, obs)
    effects += out
    return TripState(
        last_fix=fix,
        deviation=dv,
        zone=zn,
        stop=sp,
        speed=sd,
        plausibility=verdict.state,
        gnss=g,
        device=dev,
        lock=state.lock,
        lock_auth=state.lock_auth,
        overdue_raised=state.overdue_raised,
    )

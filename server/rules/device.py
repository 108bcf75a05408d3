"""DEVICE_OFFLINE: the gateway's last will (`offline`), a `stopped` announcement, or silence
longer than `silence_s` during a trip (found by `tick`, on the server's receive times).
Cleared by `online` or by any live (not replayed) message.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from contract.payloads import AvailabilityState
from server.rules.alarms import Effect, Raise, clear, raise_
from server.rules.inputs import TripContext
from server.rules.state import DeviceState


def heard(st: DeviceState, at: datetime, live: bool) -> tuple[DeviceState, list[Effect]]:
    """Any message from the gateway; `live` is False for outbox replays."""
    last = at if st.last_heard_at is None else max(st.last_heard_at, at)
    if st.active and live:
        return DeviceState(last, False), [clear("DEVICE_OFFLINE", at, reason="message received")]
    if last is st.last_heard_at:
        return st, []
    # (on every message: the constructor, as `dataclasses.replace` costs three times as much)
    return DeviceState(last, st.active), []


def on_availability(
    st: DeviceState, state: AvailabilityState, at: datetime
) -> tuple[DeviceState, list[Effect]]:
    if state == "online":
        return heard(st, at, live=True)
    if st.active:
        return st, []
    reason = "last will: offline" if state == "offline" else "gateway stopped"
    return replace(st, active=True), [raise_("DEVICE_OFFLINE", at, None, reason=reason)]


def check_silence(
    st: DeviceState, now: datetime, ctx: TripContext, last_received_at: datetime | None = None
) -> tuple[DeviceState, list[Effect]]:
    """On a timer tick: silent longer than allowed? Measured on the server's clock from
    `last_received_at` — when the server last received a message of the gateway — never
    from the device's own `ts` (a clock behind would make a talking gateway look silent,
    a clock ahead a silent one look alive); `last_heard_at` (device time) only when the
    receive time is unknown. Raised as at the moment the silence became too long, however
    late a tick finds it (the alarm sink then knows it again)."""
    if st.active:
        return st, []
    since = _silent_since(st, ctx, last_received_at)
    if since is None:
        return replace(st, last_heard_at=now), []
    due = _due(since, ctx)
    if now <= due:
        return st, []
    return replace(st, active=True), [_silent(since, due, now, ctx)]


def silence_due(
    st: DeviceState, ctx: TripContext, last_received_at: datetime | None = None
) -> datetime | None:
    """The time after which `check_silence` raises DEVICE_OFFLINE unless the gateway is
    heard from before; None while it is raised (or when nothing says since when)."""
    if st.active:
        return None
    since = _silent_since(st, ctx, last_received_at)
    return None if since is None else _due(since, ctx)


def silence_ended(
    st: DeviceState, ctx: TripContext, since: datetime, again: datetime, heard_at: datetime
) -> list[Effect]:
    """The gateway, silent since `since` (server receive times), was heard from `again`
    by a message dated `heard_at`: when no tick found the silence longer than allowed,
    DEVICE_OFFLINE raised as `check_silence` would have, and cleared by that message.
    The state is not changed: it ends heard from, as it began."""
    if st.active:
        return []
    due = _due(since, ctx)
    if again <= due:
        return []
    raised = _silent(since, due, again, ctx)
    return [raised, clear("DEVICE_OFFLINE", max(heard_at, raised.at), reason="message received")]


def _silent_since(
    st: DeviceState, ctx: TripContext, last_received_at: datetime | None
) -> datetime | None:
    return last_received_at or st.last_heard_at or ctx.started_at


def _silent(since: datetime, due: datetime, found: datetime, ctx: TripContext) -> Raise:
    """DEVICE_OFFLINE for a silence since `since`, too long from `due`, found at `found`:
    dated `due` whoever finds it (the alarm sink then knows it again) — or the trip's
    start, for a silence that began before it (the last message was of its trip before)."""
    started = ctx.started_at
    return raise_(
        "DEVICE_OFFLINE",
        started if started is not None and due < started else due,
        None,
        reason="silent",
        silent_s=round((found - since).total_seconds()),
        last_heard_at=since.isoformat(),
    )


def _due(since: datetime, ctx: TripContext) -> datetime:
    return since + timedelta(seconds=ctx.profile.silence_s)

"""Hostile commands on a real truck agent's command topic: the e-lock's unseal (issue 17).

The truck rig (tests/hil/truck_rig.py): Mosquitto, the GNSS and e-lock stubs on their
ptys, `python -m edge truck`; the lock sealed for the trip. A hostile client publishes on
`bondwatch/v1/truck/{node}/command` every kind of bad command (tests/hil/hostile_commands.py),
each made from an unseal the server signed **with a genuine lock token** for this lock
and trip, so that any one reaching the lock would open it; then a flood of 200 around
the server's one valid unseal, and its replays.

Checked: the lock (its own state, polled all along) stays sealed until the valid unseal,
accepts exactly one token (its counter) and never sees a wrong one; every command with a
readable id is answered with its precise outcome, no other is; the agent stays up,
counts each refusal by reason and logs each reason once a minute.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from contract.payloads import TruckCommand
from contract.signing import load_private_key, sign
from tests.hil.conftest import Bench
from tests.hil.hardware import stubs_only
from tests.hil.hostile_commands import (
    Sent,
    answered,
    answers_of,
    check_tally,
    client,
    fields,
    flood,
    hostile,
    publish,
    refusal_lines,
    replayed,
    verified,
)
from tests.hil.truck_rig import TruckRig

pytestmark = [pytest.mark.hil, pytest.mark.slow, pytest.mark.timeout(120)]

NODE = "TRK-HOSTILE-1"
TRIP = "HIL-H-0001"
FLOOD = 200
POLL_S = 0.1


@pytest.fixture
def rig(bench: Bench) -> TruckRig:
    """The truck with its lock sealed for `TRIP` and its agent running (stubs: the test
    reads the lock's own state)."""
    rig = TruckRig(bench, NODE)
    rig.start_gnss(rate=1, time_scale=1)
    rig.start_lock(interval_s=5)
    assert rig.seal(TRIP) == "done sealed"
    rig.write_config(with_lock=True, reporting={"interval_s": 10})
    rig.start_agent()
    return rig


@dataclass
class LockWatch:
    task: asyncio.Task[None]
    #: (monotonic time the state was read by, the lock stub's state)
    samples: list[tuple[float, dict[str, Any]]]


@contextlib.asynccontextmanager
async def watching_lock(rig: TruckRig) -> AsyncIterator[LockWatch]:
    samples: list[tuple[float, dict[str, Any]]] = []

    async def poll() -> None:
        while True:
            state = await asyncio.to_thread(rig.lock_state)
            samples.append((time.monotonic(), state))
            await asyncio.sleep(POLL_S)

    watch = LockWatch(asyncio.create_task(poll()), samples)
    try:
        yield watch
    finally:
        watch.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watch.task


async def connected(rig: TruckRig, within_s: float = 30) -> None:
    assert rig.agent is not None
    async with asyncio.timeout(within_s):
        while "connected to" not in rig.agent.log_path.read_text(errors="replace"):
            assert rig.agent.running, rig.agent.log_path.read_text()[-3000:]
            await asyncio.sleep(0.1)


def _sealed(state: dict[str, Any], counter: int) -> bool:
    return bool(
        state["state"] == "sealed"
        and state["trip_id"] == TRIP
        and state["token_counter"] == counter
        and state["wrong_passwords"] == 0
    )


@stubs_only("reads the lock stub's own state and token counter")
async def test_hostile_commands_never_unseal_the_lock_the_signed_unseal_does_once(rig):
    started = time.monotonic()
    await connected(rig)
    assert rig.agent is not None
    log_mark = len(rig.agent.log_path.read_text(errors="replace"))
    key = load_private_key(rig.bench.private_key)
    sealed = rig.lock_state()
    counter = sealed["token_counter"]
    assert _sealed(sealed, counter), sealed
    token = base64.b64encode(rig.token("unseal", TRIP)).decode()

    def unseal(**change: Any) -> TruckCommand:
        return sign(rig.command("unseal", TRIP, lock_token=token, **change), key)

    aim = fields(unseal())  # the bad ones carry the genuine token
    host, port = rig.bench.broker.host, rig.bench.broker.port
    sent: list[Sent] = []
    async with (
        answers_of(host, port, "truck", NODE) as answers,
        client(host, port, "hostile") as enemy,
        client(host, port, "server") as server,
        watching_lock(rig) as watch,
    ):
        first = [
            *hostile(key, aim, "trip_id", "first"),
            verified(
                unseal(lock_id="EL-OTHER"),
                "failed",
                "lock EL-OTHER is not configured",
                "other lock",
            ),
            verified(
                sign(rig.command("unseal", TRIP), key), "refused", "lock_token", "without token"
            ),
        ]
        await publish(enemy, "truck", NODE, first)
        sent += first
        await answered(answers, sent, NODE)
        assert _sealed(rig.lock_state(), counter)

        # The flood, the server's unseal in its middle, its replays among the rest.
        flood_mark = len(rig.agent.log_path.read_text(errors="replace"))
        before = flood(key, aim, "trip_id", FLOOD // 2, "before")
        await publish(enemy, "truck", NODE, before)
        valid = unseal()
        good = verified(valid, "done", "unsealed", "the server's unseal")
        valid_sent_at = time.monotonic()
        await publish(server, "truck", NODE, [good])
        after = flood(key, aim, "trip_id", FLOOD - len(before), "after", replayed(valid))
        await publish(enemy, "truck", NODE, after)
        sent += [*before, good, *after]
        await answered(answers, sent, NODE, within_s=40)
        flood_lines = rig.agent.log_path.read_text(errors="replace")[flood_mark:].splitlines()
        assert not watch.task.done()

    opened = rig.lock_state()
    assert opened["state"] == "unsealed", opened
    assert opened["token_counter"] > counter  # the one token, once
    assert opened["wrong_passwords"] == 0
    early = [state for seen, state in watch.samples if seen < valid_sent_at]
    assert early and all(_sealed(s, counter) for s in early)
    # Before the valid unseal, the lock never moved; after it, it never re-sealed.
    assert all(s["state"] == "unsealed" for _, s in watch.samples[-3:])
    assert rig.agent.running

    minutes = int((time.monotonic() - started) // 60) + 1
    lines = rig.agent.log_path.read_text(errors="replace")[log_mark:].splitlines()
    logged = refusal_lines(lines)
    assert set(logged) == {item.reason for item in sent if item.reason is not None}
    assert max(logged.values()) <= minutes, logged
    # The unseal's own line and the first replay's; room for a device's health change.
    assert len(flood_lines) <= 6, "\n".join(flood_lines)

    assert rig.agent.stop() == 0
    check_tally(rig.agent.log_path.read_text(errors="replace"), sent)


@stubs_only("reads the lock stub's own state")
async def test_first_command_of_a_restarted_gateway_gets_its_own_answer(rig):
    """The handheld sealed the lock (another driver), then the agent's driver started: its
    first command, an unseal, is carried out and answered as itself, not with the seal's
    cached answer (devices/elock/exchange.py; docs/lock-profile.md, what a repeat is)."""
    await connected(rig)
    key = load_private_key(rig.bench.private_key)
    token = base64.b64encode(rig.token("unseal", TRIP)).decode()
    valid = sign(rig.command("unseal", TRIP, lock_token=token), key)
    good = verified(valid, "done", "unsealed", "the server's unseal")
    host, port = rig.bench.broker.host, rig.bench.broker.port
    async with (
        answers_of(host, port, "truck", NODE) as answers,
        client(host, port, "server") as server,
    ):
        await publish(server, "truck", NODE, [good])
        await answered(answers, [good], NODE, 20)
    assert rig.lock_state()["state"] == "unsealed"

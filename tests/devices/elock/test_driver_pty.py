"""The driver against the lock firmware stub on a real pty (hardware-in-the-loop style)."""

from __future__ import annotations

import asyncio
import itertools
import json
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from devices.elock.authorisation import TokenAction, make_token
from devices.elock.driver import ElockDriver, Jt808LockConfig, LockEvent
from devices.elock.report_mac import check_report_mac
from tests.devices.elock.lockharness import Harness

ROOT = Path(__file__).resolve().parents[3]
SECRET = b"lock-L1-secret"
SITE = (22.5431, 113.9000)


class Stub:
    def __init__(self, process: asyncio.subprocess.Process, path: str) -> None:
        self.process = process
        self.path = path

    async def control(self, line: str) -> dict[str, Any]:
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.write(line.encode() + b"\n")
        await self.process.stdin.drain()
        answer = (await asyncio.wait_for(self.process.stdout.readline(), 5)).decode()
        assert answer.startswith("OK "), answer
        state: dict[str, Any] = json.loads(answer[3:])
        return state


async def start_stub(*extra: str) -> Stub:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "firmware_stubs.elock",
        "--lock-id",
        "L1",
        "--phone",
        "13912345678",
        "--secret",
        SECRET.decode(),
        "--interval",
        "0.3",
        "--lat",
        str(SITE[0]),
        "--lon",
        str(SITE[1]),
        "--area",
        f"{SITE[0]},{SITE[1]},500",
        *extra,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        cwd=ROOT,
    )
    assert process.stdout is not None
    path = (await asyncio.wait_for(process.stdout.readline(), 10)).decode().strip()
    ready = (await asyncio.wait_for(process.stdout.readline(), 10)).decode().strip()
    assert ready == "READY"
    assert path.startswith("/dev/")
    return Stub(process, path)


@pytest.fixture
async def stub() -> AsyncIterator[Stub]:
    started = await start_stub()
    try:
        yield started
    finally:
        started.process.terminate()
        await started.process.wait()


@asynccontextmanager
async def driving(stub: Stub) -> AsyncIterator[Harness]:
    config = Jt808LockConfig(
        type="jt808", port=stub.path, lock_ids=["L1"], ack_timeout_s=0.6, retries=3, silence_s=5
    )
    harness = Harness(ElockDriver(config))
    task = asyncio.create_task(harness.driver.run(harness.on_event, harness.on_health))
    await harness.wait_for(lambda e: e.event == "status")
    try:
        yield harness
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


@pytest.fixture
async def harness(stub: Stub) -> AsyncIterator[Harness]:
    async with driving(stub) as driven:
        yield driven


async def test_reports_keep_a_time_scaled_clock() -> None:
    """Beside a GNSS stub at ten times real time (the demo), the lock's reports carry the
    same simulated time: `--start-time` at `--start-wall`, ten seconds a wall second."""
    start = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
    wall = time.time()
    stub = await start_stub(
        *("--time-scale", "10", "--start-time", "2026-11-23T08:00:00Z", "--start-wall", repr(wall))
    )
    try:
        async with driving(stub) as harness:
            seen = []
            for _ in range(2):
                harness.events.clear()
                event = await harness.wait_for(lambda e: e.event == "status")
                seen.append((event.time, time.time()))
                await asyncio.sleep(1.0)
            for reported, received in seen:
                expected = start + timedelta(seconds=(received - wall) * 10)
                # written whole seconds, a moment (here ≤ 0.4 wall s) before it arrived
                assert expected - timedelta(seconds=6) <= reported <= expected, (reported, expected)
            (first, first_at), (second, second_at) = seen
            ran = (second - first).total_seconds()
            assert ran == pytest.approx((second_at - first_at) * 10, abs=6)
            # unseal tokens are still checked on the wall clock (the server's)
            assert await _seal(harness, "TRIP-9") == "done"
            reply = await harness.driver.unseal("L1", "TRIP-9", _token("TRIP-9"))
            assert (reply.result, reply.reason) == ("done", "")
    finally:
        stub.process.terminate()
        await stub.process.wait()


_COUNTERS = itertools.count(1)


def _token(
    trip: str, minutes: int = 5, secret: bytes = SECRET, action: TokenAction = "unseal"
) -> bytes:
    """A fresh single-use token (the next counter), as the server makes them."""
    expires = datetime.now(UTC) + timedelta(minutes=minutes)
    return make_token(secret, "L1", action, trip, next(_COUNTERS), expires)


async def _seal(harness: Harness, trip: str) -> str:
    reply = await harness.driver.seal("L1", trip, _token(trip, action="seal"))
    return reply.result


def _signed(event: LockEvent, secret: bytes = SECRET) -> bool:
    assert event.counter is not None and event.mac is not None
    return check_report_mac(
        secret,
        event.mac,
        event.lock_id,
        event.counter,
        event.time,
        event.state,
        event.event,
        event.battery_pct,
    )


async def test_status_events_arrive(harness: Harness) -> None:
    event = await harness.wait_for(lambda e: e.event == "status")
    assert event.lock_id == "L1"
    assert event.state == "unsealed"
    assert event.battery_pct == 100
    assert event.time.tzinfo is not None
    assert abs(datetime.now(UTC) - event.time) < timedelta(seconds=5)
    assert (event.lat, event.lon) == SITE
    assert event.raw_msg_id == 0x0200
    assert harness.health == [("ok", "frames arriving")]
    reply = await harness.driver.query("L1")
    assert (reply.result, reply.state, reply.battery_pct) == ("done", "unsealed", 100)


async def test_seal_unseal_inside_area(harness: Harness, stub: Stub) -> None:
    reply = await harness.driver.seal("L1", "TRIP-1", _token("TRIP-1", action="seal"))
    assert (reply.result, reply.state, reply.attempts) == ("done", "sealed", 1)
    await harness.wait_for(lambda e: e.event == "sealed" and e.state == "sealed")
    reply = await harness.driver.unseal("L1", "TRIP-1", _token("TRIP-1"))
    assert (reply.result, reply.reason, reply.state) == ("done", "", "unsealed")
    await harness.wait_for(lambda e: e.event == "unsealed")
    assert (await stub.control("status"))["state"] == "unsealed"


async def test_unseal_outside_area_refused(harness: Harness, stub: Stub) -> None:
    assert await _seal(harness, "TRIP-2") == "done"
    await stub.control("position 22.6 113.9")  # ~6 km away
    reply = await harness.driver.unseal("L1", "TRIP-2", _token("TRIP-2"))
    assert (reply.result, reply.reason, reply.state) == ("refused", "outside_area", "sealed")
    event = await harness.wait_for(lambda e: e.event == "unseal_refused_outside_area")
    assert event.state == "sealed"
    assert event.lat == 22.6


async def test_wrong_token_counts_wrong_password(harness: Harness, stub: Stub) -> None:
    assert await _seal(harness, "TRIP-3") == "done"
    for expected in (1, 2):
        reply = await harness.driver.unseal("L1", "TRIP-3", _token("TRIP-3", secret=b"guess"))
        assert (reply.result, reply.reason, reply.wrong_passwords) == (
            "refused",
            "bad_token",
            expected,
        )
    await harness.wait_for(lambda e: e.event == "wrong_password")
    assert (await stub.control("status"))["wrong_passwords"] == 2
    assert (await harness.driver.unseal("L1", "TRIP-3", _token("TRIP-3", minutes=-1))).reason == (
        "token_expired"
    )


async def test_dropped_ack_is_retried(harness: Harness, stub: Stub) -> None:
    await stub.control("drop_acks 2")
    reply = await harness.driver.seal("L1", "TRIP-4", _token("TRIP-4", action="seal"))
    assert (reply.result, reply.state) == ("done", "sealed")
    assert reply.attempts >= 3  # two answers swallowed: at least two retries
    assert (await stub.control("status"))["drop_acks"] == 0
    # carried out once although asked three times
    sealed = [e for e in harness.events if e.event == "sealed"]
    await asyncio.sleep(0.3)
    assert len([e for e in harness.events if e.event == "sealed"]) == len(sealed) == 1


async def test_no_answer_fails_after_retries(harness: Harness, stub: Stub) -> None:
    await stub.control("drop_acks 10")
    reply = await harness.driver.query("L1")
    assert (reply.result, reply.attempts) == ("failed", 4)
    assert "no answer after 4 attempts" in reply.reason


async def test_tamper_events_and_line_faults(harness: Harness, stub: Stub) -> None:
    assert await _seal(harness, "TRIP-5") == "done"
    await stub.control("rope_cut")
    event = await harness.wait_for(lambda e: e.event == "rope_cut")
    assert event.state == "open"
    await stub.control("shell_tampered")
    await harness.wait_for(lambda e: e.event == "shell_tampered")
    bad_before = harness.driver.frames_bad
    await stub.control("bad_checksum")
    await stub.control("noise 64")
    await stub.control("battery 15")
    event = await harness.wait_for(lambda e: e.event == "low_battery")
    assert event.battery_pct == 15
    assert harness.driver.frames_bad > bad_before  # the bad check code was not acted on
    await harness.wait_for(lambda e: e.event == "status" and e.battery_pct == 15)


async def test_motor_stuck_and_shackle(harness: Harness, stub: Stub) -> None:
    await stub.control("motor_stuck on")
    reply = await harness.driver.seal("L1", "TRIP-6", _token("TRIP-6", action="seal"))
    assert (reply.result, reply.reason) == ("failed", "motor_stuck")
    await harness.wait_for(lambda e: e.event == "motor_stuck")
    await stub.control("motor_stuck off")
    assert await _seal(harness, "TRIP-6") == "done"
    await stub.control("shackle_open")
    event = await harness.wait_for(lambda e: e.event == "shackle_opened")
    assert event.state == "open"


async def test_replayed_unseal_token_is_refused(harness: Harness, stub: Stub) -> None:
    """A gateway that kept a token (or the same command resent with a new serial) cannot
    open the lock a second time: each token works once."""
    assert await _seal(harness, "TRIP-7") == "done"
    token = _token("TRIP-7")
    assert (await harness.driver.unseal("L1", "TRIP-7", token)).result == "done"
    assert await _seal(harness, "TRIP-7") == "done"  # sealed again, with a new seal token
    again = await harness.driver.unseal("L1", "TRIP-7", token)  # a new serial: carried out
    assert (again.result, again.reason, again.state) == ("refused", "token_reused", "sealed")
    state = await stub.control("status")
    assert (state["state"], state["wrong_passwords"]) == ("sealed", 0)
    # sealing needs a seal token: the unseal token does not do
    unsealed = await harness.driver.unseal("L1", "TRIP-7", _token("TRIP-7"))
    assert unsealed.result == "done"
    forged = await harness.driver.seal("L1", "TRIP-8", _token("TRIP-8"))
    assert (forged.result, forged.reason, forged.state) == ("refused", "bad_token", "unsealed")


async def test_reports_are_signed_and_counted(harness: Harness, stub: Stub) -> None:
    await stub.control("shell_tampered")
    tampered = await harness.wait_for(lambda e: e.event == "shell_tampered")
    later = await harness.wait_for(
        lambda e: e.counter is not None and e.counter > (tampered.counter or 0)
    )
    events = [e for e in harness.events if e.raw_msg_id == 0x0200]
    counters = [e.counter or 0 for e in events]
    assert all(e.counter is not None for e in events)
    assert counters == sorted(counters) and len(set(counters)) == len(counters)
    assert all(_signed(e) for e in events)
    assert _signed(tampered) and _signed(later)
    assert not _signed(tampered, secret=b"lock-L2-secret")
    # a changed report does not carry the lock's MAC any more
    hidden = LockEvent(**{**vars(tampered), "event": "status"})
    assert not _signed(hidden)


async def test_counters_survive_a_restart_of_the_lock(tmp_path: Path) -> None:
    state_file = tmp_path / "elock-L1.json"
    seen: list[int] = []
    for run in range(2):
        stub = await start_stub("--state-file", str(state_file))
        try:
            async with driving(stub) as harness:
                await harness.wait_for(lambda e: e.event == "status")
                seen += [e.counter for e in harness.events if e.counter is not None]
                if run == 0:
                    assert await _seal(harness, "TRIP-R") == "done"
                    token = _token("TRIP-R")
                    assert (await harness.driver.unseal("L1", "TRIP-R", token)).result == "done"
                else:  # the lock restarted unsealed; its new seal's token is newer still
                    assert await _seal(harness, "TRIP-R") == "done"
                    reply = await harness.driver.unseal("L1", "TRIP-R", token)
                    assert (reply.result, reply.reason) == ("refused", "token_reused")
        finally:
            stub.process.terminate()
            await stub.process.wait()
    # the report counter went on where it stopped: never a counter sent twice
    assert seen == sorted(seen) and len(set(seen)) == len(seen)
    saved = json.loads(state_file.read_text())
    assert saved["report_counter"] >= seen[-1] and saved["token_counter"] > 0


async def test_unknown_lock_is_not_commanded(harness: Harness) -> None:
    reply = await harness.driver.query("L2")
    assert (reply.result, reply.reason) == ("failed", "lock L2 is not configured")


async def test_missing_port_reports_down_once() -> None:
    config = Jt808LockConfig(
        type="jt808",
        port="/dev/does-not-exist-elock",
        lock_ids=["L1"],
        reconnect_min_s=0.05,
        reconnect_max_s=0.1,
    )
    harness = Harness(ElockDriver(config))
    task = asyncio.create_task(harness.driver.run(harness.on_event, harness.on_health))
    await asyncio.sleep(0.5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert [status for status, _ in harness.health] == ["down"]
    assert "does-not-exist-elock" in harness.health[0][1]

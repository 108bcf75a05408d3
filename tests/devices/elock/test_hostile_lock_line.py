"""A broken or hostile lock line, at the real driver over a pseudo-terminal: a report the
lock sends again is answered again and given once; line noise is not a healthy line; a
place or battery level no lock can have is left out; a dropped frame is logged once in a
while, counted always."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tty
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest

from devices.elock.bodies import Location, PlatformResponse
from devices.elock.codec import decode, encode
from devices.elock.driver import ElockDriver, Jt808LockConfig, vendor_lock_events
from devices.elock.framing import FrameSplitter
from devices.elock.header import Header
from devices.elock.tlv import Extra
from tests.devices.elock.lockharness import Harness
from tests.edge.jt808.conftest import lock_report

PHONE = "13800000101"
LOCK = "EL-CELL-1"


class Line:
    """The lock's end of a pseudo-terminal whose other end the driver opened."""

    def __init__(self, master: int) -> None:
        self.master = master
        self.splitter = FrameSplitter()

    def write(self, data: bytes) -> None:
        os.write(self.master, data)

    async def answers(self, count: int, within: float = 5.0) -> list[PlatformResponse]:
        out: list[PlatformResponse] = []
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(within):
            while len(out) < count:
                chunk = await loop.run_in_executor(None, os.read, self.master, 4096)
                for raw in self.splitter.feed(chunk):
                    body = decode(raw).body
                    if isinstance(body, PlatformResponse):
                        out.append(body)
        return out


@contextlib.asynccontextmanager
async def driving(silence_s: float = 30.0) -> AsyncIterator[tuple[Harness, Line]]:
    master, slave = os.openpty()
    tty.setraw(master)
    tty.setraw(slave)
    config = Jt808LockConfig(
        type="jt808",
        port=os.ttyname(slave),
        lock_ids=[LOCK],
        phones={LOCK: PHONE},
        silence_s=silence_s,
    )
    driver = ElockDriver(config)
    harness = Harness(driver)
    task = asyncio.create_task(driver.run(harness.on_event, harness.on_health))
    try:
        async with asyncio.timeout(5):
            await driver._connected.wait()
        yield harness, Line(master)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        os.close(master)
        os.close(slave)


def frame(location: Location, serial: int) -> bytes:
    return encode(Header(0x0200, PHONE, serial), location)


async def test_a_report_sent_again_is_answered_again_and_given_once() -> None:
    async with driving() as (harness, line):
        first = frame(lock_report(5, event="rope_cut"), 77)
        line.write(first)
        line.write(first)  # the lock missed the answer: the very same frame again
        line.write(frame(lock_report(6), 78))
        answers = await line.answers(3)
        assert [a.reply_serial for a in answers] == [77, 77, 78]
        await harness.wait_for(lambda e: e.counter == 6)
        assert [e.counter for e in harness.events] == [5, 6]
        assert harness.driver.frames_repeated == 1


async def test_line_noise_after_a_good_frame_is_not_a_healthy_line() -> None:
    async with driving(silence_s=0.5) as (harness, line):
        line.write(frame(lock_report(1), 1))
        await harness.wait_for(lambda e: e.counter == 1)
        assert harness.health[-1] == ("ok", "frames arriving")
        for _ in range(12):  # 1.2 s of bytes that never make a frame
            line.write(b"\x55" * 64)
            await asyncio.sleep(0.1)
        assert harness.health[-1][0] == "degraded"
        assert "bytes arriving" in harness.health[-1][1]


async def test_an_impossible_place_and_battery_are_left_out_the_event_kept() -> None:
    async with driving() as (harness, line):
        report = lock_report(9, event="shell_tampered", lat=95.5)
        line.write(frame(report, 5))
        event = await harness.wait_for(lambda e: e.counter == 9)
        assert event.event == "shell_tampered"
        assert (event.lat, event.lon) == (None, None)


def test_a_vendor_lock_without_a_fix_is_not_placed_at_zero() -> None:
    """0x63 item: one lock, sealed; the report is not positioned (status bit 1 clear)."""
    item = Extra(0x63, bytes.fromhex("0002604323aa") + (4100).to_bytes(2, "big") + b"\x31\0\0")

    def sent(location: Location) -> Location:
        body = decode(frame(location, 1)).body  # the items decoded as a lock's line gives them
        assert isinstance(body, Location)
        return body

    unplaced = sent(Location(0, 0, 0.0, 0.0, 0, 0.0, 0, None, extras=(item,)))
    (event,) = vendor_lock_events(unplaced, 0x0200)
    assert (event.lat, event.lon) == (None, None)
    placed = sent(replace(unplaced, status=1 << 1, lat=31.2, lon=121.5))
    (event,) = vendor_lock_events(placed, 0x0200)
    assert (event.lat, event.lon) == (31.2, 121.5)


async def test_bad_frames_are_counted_each_and_logged_once_in_a_while(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, "devices.elock.driver")
    async with driving() as (harness, line):
        bad = bytearray(frame(lock_report(3), 3))
        bad[-2] ^= 0xFF  # the check code
        for _ in range(50):
            line.write(bytes(bad))
        line.write(frame(lock_report(4), 4))
        await harness.wait_for(lambda e: e.counter == 4)
        assert harness.driver.frames_bad == 50
    dropped = [r for r in caplog.records if "dropped frame" in r.getMessage()]
    assert len(dropped) == 1


async def test_the_same_frame_after_a_long_quiet_is_a_new_report(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A lock without clock or counter that started its serials again after a restart may
    send a frame byte for byte like one of long ago: that one is given."""
    import devices.elock.driver as driver_module

    monkeypatch.setattr(driver_module, "REPEAT_WINDOW_S", 0.3)
    async with driving() as (harness, line):
        report = frame(lock_report(7), 9)
        line.write(report)
        await harness.wait_for(lambda e: e.counter == 7)
        line.write(report)  # at once: a resend
        await line.answers(2)
        await asyncio.sleep(0.5)
        line.write(report)  # after the window: new
        await line.answers(1)
        await asyncio.sleep(0.1)
        assert [e.counter for e in harness.events] == [7, 7]
        assert harness.driver.frames_repeated == 1

"""The stub on a real pty, read by the real driver: fixes, health, unplug/replug."""

from __future__ import annotations

import asyncio
import itertools
import math
import sys
from pathlib import Path

import pytest

from devices.gnss.codec import GnssFix
from devices.gnss.conformance import decode_bytes, read_log
from devices.gnss.driver import GnssDriver, NmeaGnssConfig
from firmware_stubs.gnss.geography import load_route
from tests.firmware_stubs.gnss.harness import reading, start_stub, stop
from tests.realdata import GPSD_LOGS


async def send(proc: asyncio.subprocess.Process, command: str) -> None:
    assert proc.stdin is not None
    proc.stdin.write(command.encode() + b"\n")
    await proc.stdin.drain()


@pytest.mark.slow
async def test_driver_reads_stub_and_survives_unplug(tmp_path: Path) -> None:
    proc, link = await start_stub(tmp_path)
    fixes: list[GnssFix] = []
    health: list[str] = []

    async def on_fix(fix: GnssFix) -> None:
        fixes.append(fix)

    async def on_health(status: str, detail: str) -> None:
        health.append(status)

    config = NmeaGnssConfig(
        type="nmea",
        port=str(link),
        no_data_timeout_s=1.0,
        reconnect_min_s=0.1,
        reconnect_max_s=0.3,
    )
    driver = GnssDriver(config)
    task = asyncio.create_task(driver.run(on_fix, on_health))
    try:

        async def wait_for(pred) -> None:
            async with asyncio.timeout(10.0):
                while not pred():  # noqa: ASYNC110 - polling the callbacks' lists
                    await asyncio.sleep(0.02)

        await wait_for(lambda: len(fixes) >= 5)
        assert health[0] == "ok"
        assert all(f.mode == 3 and f.time is not None for f in fixes[:5])
        assert fixes[1].time is not None
        assert fixes[1].time.year == 2026
        assert set(fixes[0].systems) == {"GPS", "BDS"}
        # jamming: receiver keeps talking but has no fix → degraded
        await send(proc, "fault jam 20")
        await wait_for(lambda: "degraded" in health)
        await wait_for(lambda: health[-1] == "ok")
        # unplug: the pty goes away → down; a new pty behind the same link → ok
        n = len(health)
        await send(proc, "unplug 20")
        await wait_for(lambda: "down" in health[n:])
        await wait_for(lambda: health[-1] == "ok" and "down" in health[n:])
        count = len(fixes)
        await wait_for(lambda: len(fixes) > count + 3)
        assert driver.decoder.stats.bad_checksum == 0
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await stop(proc)


async def test_points_stay_within_noise_of_route(tmp_path: Path) -> None:
    proc, link = await start_stub(tmp_path, "--noise-m", "5", "--rate", "5")
    route_file = tmp_path / "route.geojson"
    route = load_route(route_file)
    fixes: list[GnssFix] = []

    async def on_fix(fix: GnssFix) -> None:
        fixes.append(fix)

    async def on_health(status: str, detail: str) -> None:
        return None

    driver = GnssDriver(NmeaGnssConfig(type="nmea", port=str(link)))
    task = asyncio.create_task(driver.run(on_fix, on_health))
    try:
        async with asyncio.timeout(10):
            while len(fixes) < 40:  # noqa: ASYNC110
                await asyncio.sleep(0.02)
    finally:
        task.cancel()
        await stop(proc)
    distances = []
    for fix in fixes:
        assert fix.lat is not None
        assert fix.lon is not None
        x, y = route.frame.to_xy(fix.lon, fix.lat)
        distances.append(route.distance_to_line(x, y))
    assert max(distances) <= 5.0 + 0.05
    assert sum(distances) / len(distances) > 0.1  # there is noise at all
    # 5 Hz epochs, 0.2 s apart in simulated time
    times = [f.time for f in fixes if f.time is not None]
    assert len(times) == len(fixes)
    steps = {round((b - a).total_seconds(), 3) for a, b in itertools.pairwise(times)}
    assert steps == {0.2}
    speeds = [f.speed_mps for f in fixes if f.speed_mps is not None]
    assert max(speeds) <= 20.0 + 1e-6
    assert not math.isnan(speeds[0])


async def test_replay_of_a_real_log_through_the_pty(tmp_path: Path) -> None:
    """The replayed log decodes through the pty exactly as from the file.

    pyserial empties the input buffer when the driver opens the port, so whatever
    the stub wrote before that is lost, as with a live receiver: the test tolerates a
    lost head (the first fix received may be of a partly received epoch) and checks
    everything after it exactly. The last epoch is only emitted at end of input,
    which a live port never reaches, unless its closing sentence was learnt."""
    log = GPSD_LOGS / "ublox-8.log"
    expected = decode_bytes(read_log(log))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "firmware_stubs.gnss", "--replay", str(log),
        "--time-scale", "20", stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    path = (await asyncio.wait_for(proc.stdout.readline(), 10)).decode().strip()
    assert (await proc.stdout.readline()).decode().strip() == "READY"
    try:
        async with reading(path) as r:
            assert (await asyncio.wait_for(proc.stdout.readline(), 20)).strip() == b"DONE"
            await asyncio.sleep(0.3)  # the last bytes through the pty
    finally:
        await stop(proc)
    got = r.fixes
    assert len(got) >= len(expected) - 6  # at most a few epochs lost at the head
    times = [f.time for f in expected]
    start = times.index(got[1].time)
    assert got[1:] == expected[start : start + len(got) - 1]
    assert start + len(got) >= len(expected)  # to the end (the last epoch at its closer)
    assert got[-1].time is not None
    assert got[-1].time.year == 2017

"""Each fault of the stub, on a real pty, seen through the real driver and decoder."""

from __future__ import annotations

import asyncio
import itertools
import json
from pathlib import Path

from devices.gnss.codec import GnssFix
from firmware_stubs.gnss.geography import load_route
from tests.firmware_stubs.gnss.harness import box, free_port, reading, send, start_stub, stop


def steps(fixes: list[GnssFix]) -> list[float]:
    times = [f.time for f in fixes]
    assert all(t is not None for t in times)
    return [round((b - a).total_seconds(), 3) for a, b in itertools.pairwise(times)]  # type: ignore[operator]


def off_route_m(tmp_path: Path, fix: GnssFix) -> float:
    route = load_route(tmp_path / "route.geojson")
    assert fix.lat is not None
    assert fix.lon is not None
    x, y = route.frame.to_xy(fix.lon, fix.lat)
    return route.distance_to_line(x, y)


def jump_m(tmp_path: Path, a: GnssFix, b: GnssFix) -> float:
    frame = load_route(tmp_path / "route.geojson").frame
    assert a.lat is not None and a.lon is not None
    assert b.lat is not None and b.lon is not None
    ax, ay = frame.to_xy(a.lon, a.lat)
    bx, by = frame.to_xy(b.lon, b.lat)
    return float(((bx - ax) ** 2 + (by - ay) ** 2) ** 0.5)


async def test_spoofed_position_jumps_far_then_returns(tmp_path: Path) -> None:
    proc, link = await start_stub(tmp_path)
    try:
        async with reading(str(link)) as r:
            await r.wait_for(lambda: len(r.valid()) >= 3)
            assert await send(proc, "fault spoof 5000 10") == "OK fault spoof"
            await r.wait_for(lambda: len(r.valid()) >= 25)
    finally:
        await stop(proc)
    fixes = r.valid()
    jumps = [jump_m(tmp_path, a, b) for a, b in itertools.pairwise(fixes)]
    # 5 km north-east for 10 s: one jump there, one back, ordinary driving between
    big = [i for i, d in enumerate(jumps) if d > 1000]
    assert len(big) == 2
    assert all(4970 < jumps[i] < 5030 for i in big)
    assert 9 <= big[1] - big[0] <= 11
    assert all(d < 30 for i, d in enumerate(jumps) if i not in big)  # 20 m/s + noise
    assert all(off_route_m(tmp_path, f) < 3.05 for f in fixes[big[1] + 1 :])
    assert all(f.mode == 3 for f in fixes)  # the receiver believes its spoofed fix


async def test_bad_checksums_are_counted_and_cost_one_epoch(tmp_path: Path) -> None:
    proc, link = await start_stub(tmp_path)
    try:
        async with reading(str(link)) as r:
            await r.wait_for(lambda: len(r.fixes) >= 3)
            assert await send(proc, "fault checksum 3") == "OK fault checksum"
            n = len(r.fixes)
            await r.wait_for(lambda: len(r.fixes) >= n + 5)
            stats = r.driver.decoder.stats
            assert stats.bad_checksum == 3
            assert stats.missing_checksum == 0
            # GGA, RMC and VTG of one epoch were rejected: that epoch has no
            # position; every other epoch, before and after, is there.
            assert sorted(steps(r.fixes)) == [1.0] * (len(r.fixes) - 2) + [2.0]
    finally:
        await stop(proc)


async def test_truncated_sentences_are_rejected_and_cost_one_epoch(tmp_path: Path) -> None:
    proc, link = await start_stub(tmp_path)
    try:
        async with reading(str(link)) as r:
            await r.wait_for(lambda: len(r.fixes) >= 3)
            assert await send(proc, "fault truncate 2") == "OK fault truncate"
            n = len(r.fixes)
            await r.wait_for(lambda: len(r.fixes) >= n + 5)
            stats = r.driver.decoder.stats
            assert stats.missing_checksum == 2  # cut before the checksum
            assert stats.bad_checksum == 0
            assert sorted(steps(r.fixes)) == [1.0] * (len(r.fixes) - 2) + [2.0]
    finally:
        await stop(proc)


async def test_garbage_bytes_are_skipped_and_no_epoch_is_lost(tmp_path: Path) -> None:
    proc, link = await start_stub(tmp_path)
    try:
        async with reading(str(link)) as r:
            await r.wait_for(lambda: len(r.fixes) >= 3)
            before = r.driver.decoder.stats.binary_bytes_skipped
            for _ in range(3):
                assert await send(proc, "fault garbage 300") == "OK fault garbage"
                await asyncio.sleep(0.06)
            n = len(r.fixes)
            await r.wait_for(lambda: len(r.fixes) >= n + 4)
            assert r.driver.decoder.stats.binary_bytes_skipped - before > 500
            assert set(steps(r.fixes)) == {1.0}
            assert all(f.mode == 3 for f in r.fixes)
    finally:
        await stop(proc)


async def test_baud_mismatch_gives_garbage_then_fixes_return(tmp_path: Path) -> None:
    proc, link = await start_stub(tmp_path)
    try:
        async with reading(str(link)) as r:
            await r.wait_for(lambda: len(r.fixes) >= 3)
            sentences = r.driver.decoder.stats.sentences
            assert await send(proc, "fault baud 6") == "OK fault baud"
            n = len(r.fixes)
            await r.wait_for(lambda: len(r.fixes) >= n + 4)
            stats = r.driver.decoder.stats
            gaps = [s for s in steps(r.fixes) if s != 1.0]
            assert len(gaps) == 1
            assert 5.0 <= gaps[0] <= 8.0  # ~6 s of bytes that decode to nothing
            assert stats.binary_bytes_skipped > 1000
            assert stats.sentences > sentences
            assert all(f.mode == 3 for f in r.fixes)
    finally:
        await stop(proc)


async def test_no_fix_inside_a_tunnel_and_fix_returns_after(tmp_path: Path) -> None:
    tunnel = box("tunnel", 113.907, 22.504, 113.909, 22.506)
    proc, link = await start_stub(tmp_path, "--time-scale", "40", zones=[tunnel])
    route = load_route(tmp_path / "route.geojson")
    zone_x = [route.frame.to_xy(lon, 22.505)[0] for lon in (113.907, 113.909)]
    try:
        async with reading(str(link)) as r:
            # wait until the truck is well past the tunnel
            await r.wait_for(
                lambda: any(f.lon is not None and f.lon > 113.910 for f in r.fixes), within_s=15
            )
    finally:
        await stop(proc)
    no_fix = [f for f in r.fixes if f.mode == 1]
    assert no_fix
    assert all(f.lat is None for f in no_fix)
    assert "degraded" in r.health
    assert r.health[-1] == "ok"
    for fix in r.valid():
        assert fix.lon is not None
        assert fix.lat is not None
        x, _ = route.frame.to_xy(fix.lon, fix.lat)
        # no fix deeper than the noise bound inside the tunnel
        assert not (zone_x[0] + 3.1 < x < zone_x[1] - 3.1)
    # ~200 m at 20 m/s: about 10 epochs without fix, in one block
    first = r.fixes.index(no_fix[0])
    assert r.fixes[first : first + len(no_fix)] == no_fix
    assert 8 <= len(no_fix) <= 12
    assert r.fixes[-1].mode == 3


async def test_urban_multipath_jumps(tmp_path: Path) -> None:
    urban = box("urban", 113.899, 22.499, 113.916, 22.506)
    proc, link = await start_stub(tmp_path, "--rate", "5", zones=[urban])
    try:
        async with reading(str(link)) as r:
            await r.wait_for(lambda: len(r.valid()) >= 150, within_s=15)
    finally:
        await stop(proc)
    off = [off_route_m(tmp_path, f) for f in r.valid()]
    jumps = [d for d in off if d > 10.0]
    assert jumps  # multipath: 20-60 m jumps lasting a few epochs
    assert max(off) <= 60.0 + 6.0 + 0.1
    assert len(jumps) < len(off) / 3
    assert all(f.hdop is not None and f.hdop >= 1.6 for f in r.valid())


async def test_tcp_control_channel(tmp_path: Path) -> None:
    port = free_port()
    proc, link = await start_stub(tmp_path, "--control-port", str(port))
    try:
        async with reading(str(link)) as r:
            await r.wait_for(lambda: len(r.valid()) >= 2)
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            try:

                async def ask(line: str) -> str:
                    writer.write(line.encode() + b"\n")
                    await writer.drain()
                    return (await asyncio.wait_for(reader.readline(), 5)).decode().strip()

                assert (await ask("status")).startswith("OK sim_s=")
                assert (await ask("fault bogus 1")).startswith("ERR")
                assert (await ask("dance")).startswith("ERR")
                command = json.dumps({"cmd": "fault", "args": ["jam", 8]})
                assert await ask(command) == "OK fault jam"
                await r.wait_for(lambda: "degraded" in r.health)
                assert await ask("clear") == "OK clear"
                await r.wait_for(lambda: r.health[-1] == "ok" and "degraded" in r.health)
            finally:
                writer.close()
                await writer.wait_closed()
    finally:
        await stop(proc)
    assert r.fixes[-1].mode == 3


async def test_beidou_gsv_talker_bd_by_default_gb_on_request(tmp_path: Path) -> None:
    for option, talker in (((), b"$BDGSV"), (("--bds-talker", "GB"), b"$GBGSV")):
        proc, link = await start_stub(tmp_path, *option)
        try:
            raw = bytearray()
            from devices.serial_port import open_serial

            stream, writer = await open_serial(str(link))
            try:
                async with asyncio.timeout(10):
                    while raw.count(b"GSV") < 6:
                        raw += await stream.read(4096)
            finally:
                writer.close()
        finally:
            await stop(proc)
        lines = bytes(raw).split(b"\r\n")
        assert any(line.startswith(talker) for line in lines)
        assert not any(line.startswith((b"$BDGSV", b"$GBGSV")) and not line.startswith(talker)
                       for line in lines)  # fmt: skip
        assert any(line.startswith(b"$GNGGA") for line in lines)
        assert any(line.startswith(b"$GNRMC") for line in lines)

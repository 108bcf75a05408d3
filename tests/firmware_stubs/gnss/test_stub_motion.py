"""What the stub sends, read raw from its pty: the speed profile (stops, bounded
acceleration) in RMC and VTG, position scatter that grows with HDOP, 10 Hz epochs,
and a replayed log's timing."""

from __future__ import annotations

import asyncio
import itertools
import math
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

from devices.gnss.codec import KNOT_MPS, encode_sentence
from devices.gnss.sentences import to_degrees, to_time_of_day
from firmware_stubs.gnss.geography import Route, load_route
from tests.firmware_stubs.gnss.harness import Line, capture, start_stub, stop, wait_done


@dataclass(frozen=True)
class Epoch:
    """One epoch of the stub's output: RMC and the VTG after it."""

    at: float  # wall (event loop) time the RMC arrived
    seconds: float  # its time of day, s
    x: float  # position in the route's local frame, m
    y: float
    rmc_mps: float
    vtg_knots_mps: float
    vtg_kmh_mps: float


def seconds_of(text: str) -> float:
    tod = to_time_of_day(text)
    assert tod is not None
    return tod[0] * 3600 + tod[1] * 60 + tod[2] + tod[3] / 1e6


def epochs(lines: list[Line], route: Route) -> list[Epoch]:
    out: list[Epoch] = []
    sentences = [(line.at, line.sentence) for line in lines]
    for (at, rmc), (_, vtg) in itertools.pairwise(sentences):
        if rmc.kind != "RMC" or rmc.fields[1] != "A":
            continue
        assert vtg.kind == "VTG"  # the stub sends VTG right after RMC
        f = rmc.fields
        lat, lon = to_degrees(f[2], f[3], 90), to_degrees(f[4], f[5], 180)
        assert lat is not None and lon is not None
        x, y = route.frame.to_xy(lon, lat)
        assert vtg.fields[1] == "T" and vtg.fields[5] == "N" and vtg.fields[7] == "K"
        assert vtg.fields[0] == f[7]  # the same course over ground
        out.append(
            Epoch(
                at=at,
                seconds=seconds_of(f[0]),
                x=x,
                y=y,
                rmc_mps=float(f[6]) * KNOT_MPS,
                vtg_knots_mps=float(vtg.fields[4]) * KNOT_MPS,
                vtg_kmh_mps=float(vtg.fields[6]) / 3.6,
            )
        )
    return out


def runs_of_zero(speeds: list[float]) -> list[tuple[int, int]]:
    """(first index, length) of each run of zero speed."""
    runs: list[tuple[int, int]] = []
    for zero, group in itertools.groupby(enumerate(speeds), key=lambda iv: iv[1] == 0.0):
        items = list(group)
        if zero:
            runs.append((items[0][0], len(items)))
    return runs


async def test_speed_follows_the_profile_stops_and_bounded_acceleration(tmp_path: Path) -> None:
    accel, cruise, rate = 2.0, 20.0, 5.0
    proc, link = await start_stub(
        tmp_path,
        *("--rate", "5", "--time-scale", "20", "--accel", "2", "--speed-kmh", "72"),
        *("--stops", "0:20,0.4:5"),
    )
    route = load_route(tmp_path / "route.geojson")
    try:
        done = asyncio.create_task(wait_done(proc))
        lines = await capture(str(link), lambda _: done.done(), within_s=60, drain_s=0.5)
        await done
    finally:
        await stop(proc)
    got = epochs(lines, route)
    assert len(got) > 500  # 20 s at the start, ~115 s of driving and the stop, at 5 Hz
    # Epochs are lost only whole, and only when this reader falls behind the port (a
    # loaded machine): every step is a whole number of epochs, and few are missing.
    period = 1 / rate
    gaps = [round((b.seconds - a.seconds) / period, 6) for a, b in itertools.pairwise(got)]
    assert all(g >= 1 and g == int(g) for g in gaps), sorted(set(gaps))
    lost = int(sum(gaps)) - len(gaps)
    assert lost <= len(got) // 20, f"{lost} epochs lost of {len(got) + lost}"
    speeds = [e.rmc_mps for e in got]
    for e in got:  # RMC and VTG say the same, to their rounding (0.001 kn / km/h)
        assert abs(e.vtg_knots_mps - e.rmc_mps) < 1e-9
        assert abs(e.vtg_kmh_mps - e.rmc_mps) < 0.0005 / 3.6 + 0.0005 * KNOT_MPS
    # acceleration and braking bounded by --accel, and both at --accel (over
    # neighbouring epochs only)
    rates = [
        (b - a) * rate for (a, b), g in zip(itertools.pairwise(speeds), gaps, strict=True) if g == 1
    ]
    rounding = 0.001 * KNOT_MPS * rate
    assert max(rates) <= accel + rounding
    assert min(rates) >= -accel - rounding
    assert max(rates) >= accel - rounding
    assert min(rates) <= -0.9 * accel
    # cruise speed reached and never exceeded
    assert abs(max(speeds) - cruise) < 0.001
    # zero speed at the stops, and only there: the start (20 s, partly before the
    # reader opened the port) and km 0.4 for 5 s (25 epochs; 26 where the float
    # countdown of the dwell leaves a remainder). An epoch lost at the stop's edge
    # leaves its length between what was seen at rest and what lay between the moving
    # epochs around it. The last epoch is the one before the truck rolls onto the
    # route's end: at most two braking steps from standstill.
    runs = runs_of_zero(speeds)
    assert len(runs) == 2
    assert runs[0][0] == 0
    first_stop, length = runs[1]
    last_zero = first_stop + length - 1
    at_rest = round((got[last_zero].seconds - got[first_stop].seconds) / period) + 1
    between = round((got[last_zero + 1].seconds - got[first_stop - 1].seconds) / period) - 1
    assert at_rest <= 26 and between >= 25, (at_rest, between)
    assert 0 < speeds[-1] <= 2 * accel / rate + 1e-6
    stop_points = [route.at(d)[:2] for d in (0.0, 400.0, route.length_m)]
    for e, v in zip(got, speeds, strict=True):
        if v == 0.0:
            nearest = min(math.hypot(e.x - px, e.y - py) for px, py in stop_points)
            assert nearest <= 3.0 + 0.01  # --noise-m 3
    end = got[-1]
    end_x, end_y = stop_points[-1]
    assert math.hypot(end.x - end_x, end.y - end_y) <= 3.0 + 0.01 + speeds[-1] / rate
    # between the stops it moves
    assert all(v > 0 for v in speeds[runs[0][1] : first_stop])
    assert all(v > 0 for v in speeds[first_stop + length :])


async def scatter(tmp_path: Path, hdop: str, seed: str, count: int) -> tuple[list[float], set[str]]:
    """Per-axis errors (m) of `count` fixes of a truck parked at the route's first point
    (a stop of 1000 s at km 0), and the HDOP values the GGAs reported."""
    proc, link = await start_stub(
        tmp_path,
        *("--stops", "0:100000", "--rate", "10", "--time-scale", "50"),
        *("--noise-m", "30", "--hdop", hdop, "--seed", seed),
    )
    try:
        lines = await capture(
            str(link), lambda got: sum(x.raw.startswith(b"$GNGGA") for x in got) > count
        )
    finally:
        await stop(proc)
    route = load_route(tmp_path / "route.geojson")
    errors: list[float] = []
    hdops: set[str] = set()
    for line in lines:
        s = line.sentence
        if s.kind != "GGA" or s.fields[5] != "1":
            continue
        lat = to_degrees(s.fields[1], s.fields[2], 90)
        lon = to_degrees(s.fields[3], s.fields[4], 180)
        assert lat is not None and lon is not None
        errors += route.frame.to_xy(lon, lat)  # the parked truck is at (0, 0)
        hdops.add(s.fields[7])
    return errors[: 2 * count], hdops


async def test_position_scatter_grows_with_the_configured_hdop(tmp_path: Path) -> None:
    # The stub's error per axis is Gaussian with sigma = HDOP x --noise-m / 3.6
    # (bounded at --noise-m, which at 3 sigma and more hardly ever bites). Fixed HDOP
    # 0.6 and 1.2, independent seeds, 300 fixes (600 axis errors) each: the sample
    # standard deviation is within ~3 % (1/sqrt(2n)) of sigma, so 15 % is 5 standard
    # errors, and the ratio of the two is 2 within the same margin.
    count = 300
    low, low_hdops = await scatter(tmp_path, "0.6", "11", count)
    high, high_hdops = await scatter(tmp_path, "1.2", "12", count)
    assert low_hdops == {"0.60"}
    assert high_hdops == {"1.20"}
    assert len(low) == len(high) == 2 * count

    def rms(values: list[float]) -> float:  # the true position is known: mean 0
        return math.sqrt(sum(v * v for v in values) / len(values))

    sigma_low, sigma_high = 0.6 * 30 / 3.6, 1.2 * 30 / 3.6  # 5 m and 10 m
    assert abs(rms(low) / sigma_low - 1) < 0.15
    assert abs(rms(high) / sigma_high - 1) < 0.15
    assert 1.7 < rms(high) / rms(low) < 2.3
    # unbiased: the mean error is within 4 standard errors of 0
    assert abs(statistics.fmean(low)) < 4 * sigma_low / math.sqrt(len(low))
    assert abs(statistics.fmean(high)) < 4 * sigma_high / math.sqrt(len(high))
    assert max(map(abs, high)) <= 30.0 + 0.01


async def test_ten_hz_epochs_are_100_ms_apart_in_fix_time_and_wall_time(tmp_path: Path) -> None:
    proc, link = await start_stub(tmp_path, "--rate", "10", "--time-scale", "1")
    try:
        lines = await capture(str(link), lambda got: sum(b"GGA" in x.raw for x in got) >= 26)
    finally:
        await stop(proc)
    gga = [line for line in lines if line.sentence.kind == "GGA"][1:]  # the first may be cut
    assert len(gga) >= 25
    times = [seconds_of(line.sentence.fields[0]) for line in gga]
    assert {round(b - a, 3) for a, b in itertools.pairwise(times)} == {0.1}
    # wall time: the stub paces on an absolute schedule, so the whole span is ~2.4 s
    # however the scheduler jitters one epoch; single gaps are only roughly 100 ms
    walls = [b.at - a.at for a, b in itertools.pairwise(gga)]
    span = gga[-1].at - gga[0].at
    assert abs(span - 0.1 * (len(gga) - 1)) < 0.15
    assert 0.08 <= statistics.median(walls) <= 0.12
    assert max(walls) < 0.3


def replay_log(path: Path) -> tuple[list[bytes], list[float]]:
    """A gpsd-style log with irregular epochs: the sentences (without comments) and
    the simulated time each epoch should take before the next one, in seconds."""
    times = [
        "235950.00",
        "235953.00",  # a 3 s lead-in, for the reader to open the port
        "235954.00",
        "235955.00",
        "235957.00",
        "235957.50",
        "235958.00",
        "235959.00",  # then a 30 s gap, paced as 5 s at most
        "000029.00",  # across midnight
        "000030.00",
        "000031.00",
    ]
    expected = [3.0, 1.0, 1.0, 2.0, 0.5, 0.5, 1.0, 5.0, 1.0, 1.0]
    # as gpsd's test logs: comments end in LF, sentences in CR LF, as received
    text = "# a receiver log, gpsd test-suite style\n# comments are not sent\n"
    sentences: list[bytes] = []
    for t in times:
        epoch = [
            f"GPRMC,{t},A,2232.1234,N,11403.5678,E,1.0,90.0,231126,,,A",
            f"GPGGA,{t},2232.1234,N,11403.5678,E,1,08,0.9,35.2,M,-3.0,M,,",
            "GPGSA,A,3,01,02,03,04,05,,,,,,,,1.5,0.9,1.2",
        ]
        encoded = [encode_sentence(body) for body in epoch]
        sentences += [e.strip().encode() for e in encoded]
        text += encoded[0] + f"# epoch {t}\n" + "".join(encoded[1:])
    path.write_bytes(text.encode())
    return sentences, expected


async def test_replay_keeps_the_timing_of_the_log(tmp_path: Path) -> None:
    log = tmp_path / "irregular.log"
    sentences, expected = replay_log(log)
    scale = 10.0
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "firmware_stubs.gnss", "--replay", str(log),
        "--time-scale", str(scale), stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    path = (await asyncio.wait_for(proc.stdout.readline(), 10)).decode().strip()
    assert (await proc.stdout.readline()).strip() == b"READY"
    try:
        done = asyncio.create_task(wait_done(proc))
        lines = await capture(path, lambda _: done.done(), drain_s=0.5)
        await done
        await asyncio.sleep(0.05)
    finally:
        await stop(proc)
    # The first epoch usually went out before the port was opened (lost, as with a
    # live receiver), in whole or in part when the port opened amid it (on a loaded
    # machine); from then on every sentence arrived, in order, comments dropped.
    raw = [line.raw for line in lines]
    lost = len(sentences) - len(raw)
    assert 0 <= lost <= 3
    assert raw == sentences[lost:]
    partial = -lost % 3  # the first epoch's tail that arrived without its RMC
    lines = lines[partial:]
    expected = expected[(lost + partial) // 3 :]
    rmc = [line for line in lines if line.sentence.kind == "RMC"]
    # each epoch's sentences arrive together, then the wait the log's times give
    for i, first in enumerate(rmc):
        epoch = lines[3 * i : 3 * i + 3]
        assert epoch[0] is first
        assert epoch[-1].at - first.at < 0.03
    waits = [b.at - a.at for a, b in itertools.pairwise(rmc)]
    for wait, sim in zip(waits, expected, strict=True):
        assert abs(wait - sim / scale) < 0.04
    total = rmc[-1].at - rmc[0].at
    assert abs(total - sum(expected) / scale) < 0.05

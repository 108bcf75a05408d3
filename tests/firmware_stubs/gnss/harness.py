"""Run the GNSS stub on a pty and read it with the real driver (shared by the pty tests)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devices.gnss.codec import GnssFix
from devices.gnss.driver import GnssDriver, NmeaGnssConfig
from devices.gnss.sentences import Sentence, parse_sentence
from devices.serial_port import open_serial

ROUTE = {
    "type": "FeatureCollection",
    "features": [
        {
            "type": "Feature",
            "properties": {"kind": "route", "route_id": "R1", "name": "t", "corridor_m": 100},
            "geometry": {
                "type": "LineString",
                "coordinates": [[113.90, 22.50], [113.905, 22.505], [113.915, 22.505]],
            },
        }
    ],
}


def box(kind: str, lon0: float, lat0: float, lon1: float, lat1: float) -> dict[str, object]:
    """A rectangular zone Feature."""
    ring = [[lon0, lat0], [lon1, lat0], [lon1, lat1], [lon0, lat1], [lon0, lat0]]
    return {
        "type": "Feature",
        "properties": {"kind": kind, "zone_id": kind, "name": kind},
        "geometry": {"type": "Polygon", "coordinates": [ring]},
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def start_stub(
    tmp_path: Path, *extra: str, zones: list[dict[str, object]] | None = None
) -> tuple[asyncio.subprocess.Process, Path]:
    route = tmp_path / "route.geojson"
    route.write_text(json.dumps(ROUTE))
    link = tmp_path / "gnss0"
    args = [
        "--route",
        str(route),
        "--time-scale",
        "20",
        "--start-time",
        "2026-11-23T08:00:00Z",
        "--seed",
        "3",
        "--speed-kmh",
        "72",
        "--link",
        str(link),
    ]
    if zones is not None:
        zones_file = tmp_path / "zones.geojson"
        zones_file.write_text(json.dumps({"type": "FeatureCollection", "features": zones}))
        args += ["--zones", str(zones_file)]
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "firmware_stubs.gnss",
        *args,
        *extra,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    lines = []
    while True:
        line = (await asyncio.wait_for(proc.stdout.readline(), 10)).decode().strip()
        lines.append(line)
        if line == "READY":
            break
    assert lines[0] == f"LINK {link}"
    assert lines[1].startswith("/dev/")
    return proc, link


async def stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.terminate()
    await asyncio.wait_for(proc.wait(), 10)


async def send(proc: asyncio.subprocess.Process, command: str) -> str:
    """Send a stdin command and return the stub's one-line answer."""
    assert proc.stdin is not None
    assert proc.stdout is not None
    proc.stdin.write(command.encode() + b"\n")
    await proc.stdin.drain()
    while True:
        line = (await asyncio.wait_for(proc.stdout.readline(), 10)).decode().strip()
        if line.startswith(("OK", "ERR")):
            return line


@dataclass
class Reader:
    """The real driver reading a port; fixes and health changes as they come."""

    driver: GnssDriver
    fixes: list[GnssFix] = field(default_factory=list)
    health: list[str] = field(default_factory=list)
    details: list[str] = field(default_factory=list)

    async def on_fix(self, fix: GnssFix) -> None:
        self.fixes.append(fix)

    async def on_health(self, status: str, detail: str) -> None:
        self.health.append(status)
        self.details.append(detail)

    async def wait_for(self, pred: Callable[[], bool], within_s: float = 10.0) -> None:
        async with asyncio.timeout(within_s):
            while not pred():  # noqa: ASYNC110 - polling the callbacks' lists
                await asyncio.sleep(0.02)

    def valid(self) -> list[GnssFix]:
        return [f for f in self.fixes if f.mode >= 2 and f.lat is not None]


@contextlib.asynccontextmanager
async def reading(port: str, **config: Any) -> AsyncIterator[Reader]:
    driver = GnssDriver(NmeaGnssConfig(type="nmea", port=port, **config))
    reader = Reader(driver)
    task = asyncio.create_task(driver.run(reader.on_fix, reader.on_health))
    try:
        yield reader
    finally:
        task.cancel()
        await asyncio.wait({task}, timeout=3.0)


@dataclass(frozen=True)
class Line:
    """One line read from the port, and when (event loop time) its bytes arrived."""

    at: float
    raw: bytes

    @property
    def sentence(self) -> Sentence:
        """The checked sentence (raises on a bad checksum)."""
        return parse_sentence(self.raw)


async def capture(
    path: str,
    done: Callable[[list[Line]], bool],
    within_s: float = 10.0,
    drain_s: float = 0.0,
) -> list[Line]:
    """Raw lines from the port `path` until `done(lines)` (checked at least every 50 ms),
    then, with `drain_s`, what is still on its way until the port is quiet that long
    (a stub that has said DONE has written its last lines, not all of them read yet)."""
    loop = asyncio.get_running_loop()
    stream, writer = await open_serial(path)
    lines: list[Line] = []
    pending = bytearray()

    def take(data: bytes) -> None:
        nonlocal pending
        now = loop.time()
        pending += data
        *complete, rest = pending.split(b"\r\n")
        lines.extend(Line(now, bytes(c)) for c in complete if c)
        pending = bytearray(rest)

    try:
        async with asyncio.timeout(within_s):
            while not done(lines):
                try:
                    async with asyncio.timeout(0.05):
                        take(await stream.read(65536))
                except TimeoutError:
                    continue
            while drain_s > 0:
                try:
                    async with asyncio.timeout(drain_s):
                        data = await stream.read(65536)
                except TimeoutError:
                    break
                if not data:
                    break
                take(data)
    finally:
        writer.close()
    return lines


async def wait_done(proc: asyncio.subprocess.Process, within_s: float = 20.0) -> None:
    """Wait for the stub's `DONE` line (the route or the log played to its end)."""
    assert proc.stdout is not None
    async with asyncio.timeout(within_s):
        while (await proc.stdout.readline()).strip() != b"DONE":
            pass

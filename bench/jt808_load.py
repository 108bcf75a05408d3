"""A load generator: thousands of simulated cellular JT/T 808 devices in one asyncio process.

    python -m bench.jt808_load --gateway 127.0.0.1:7611 --devices 10000 --phone-base \
        14000000000 --interval 10 --duration 60 [--ramp-per-s 2000]

Each device is one TCP connection (an `asyncio.Protocol`, the lightest there is): it
registers (0x0100), authenticates (0x0102) with the code it was given, then sends a
location report (0x0200, a tracker's: position and satellites) every `--interval`
seconds from a random phase, and counts the gateway's answers (0x8001) and their
latency. Phones are `--phone-base + i`; the gateway's registry must list them
(`registry_yaml` writes one). Prints one JSON line of results at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import resource
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from devices.elock.bodies import (
    Authentication,
    Body,
    Location,
    PlatformResponse,
    Registration,
    RegistrationResponse,
)
from devices.elock.codec import decode, encode
from devices.elock.framing import FrameSplitter
from devices.elock.header import Header
from devices.elock.tlv import Extra
from devices.errors import FrameError


def registry_yaml(path: Path, devices: int, phone_base: int, nodes_prefix: str = "LOAD") -> None:
    """A registry of `devices` trackers, one node each (`LOAD-00000`, …)."""
    entries = [
        {"phone": str(phone_base + i), "node_id": f"{nodes_prefix}-{i:05d}", "kind": "tracker"}
        for i in range(devices)
    ]
    path.write_text(yaml.safe_dump({"devices": entries}, sort_keys=False), encoding="utf-8")


@dataclass
class Totals:
    connected: int = 0
    online: int = 0
    refused: int = 0
    lost: int = 0
    sent: int = 0
    answered: int = 0
    latencies: list[float] = field(default_factory=list)


class Device(asyncio.Protocol):
    def __init__(self, phone: str, totals: Totals, interval: float) -> None:
        self.phone, self.totals, self.interval = phone, totals, interval
        self.transport: asyncio.Transport | None = None
        self.splitter = FrameSplitter()
        self.serial = 0
        self.sent_at: dict[int, float] = {}
        self.auth_serial = -1
        self.timer: asyncio.TimerHandle | None = None
        self.lat = 22.5 + random.random() / 10
        self.lon = 113.9 + random.random() / 10

    def send(self, body: Body) -> int:
        self.serial = (self.serial + 1) & 0xFFFF
        assert self.transport is not None
        self.transport.write(encode(Header(body.MSG_ID, self.phone, self.serial), body))
        return self.serial

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.totals.connected += 1
        self.send(Registration(44, 300, "LOAD", "LOAD-1", "T1", 0, ""))

    def connection_lost(self, exc: Exception | None) -> None:
        self.totals.lost += 1
        if self.timer is not None:
            self.timer.cancel()

    def data_received(self, data: bytes) -> None:
        for raw in self.splitter.feed(data):
            try:
                body = decode(raw).body
            except FrameError:
                continue
            if isinstance(body, RegistrationResponse):
                if body.result != 0:
                    self.totals.refused += 1
                    continue
                self.auth_serial = self.send(Authentication(body.auth_code))
            elif isinstance(body, PlatformResponse):
                if body.reply_serial == self.auth_serial and body.reply_id == 0x0102:
                    self.totals.online += 1
                    loop = asyncio.get_running_loop()
                    self.timer = loop.call_later(random.uniform(0, self.interval), self.report)
                    continue
                started = self.sent_at.pop(body.reply_serial, None)
                if started is not None and body.result == 0:
                    self.totals.answered += 1
                    self.totals.latencies.append(time.monotonic() - started)

    def report(self) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        self.lat += 0.0001
        location = Location(
            alarm=0,
            status=(1 << 1) | (1 << 19),
            lat=self.lat,
            lon=self.lon,
            alt_m=10,
            speed_kmh=40.0,
            course_deg=0,
            time=datetime.now(UTC).replace(microsecond=0),
            extras=(Extra(0x31, bytes([10])),),
        )
        self.sent_at[self.send(location)] = time.monotonic()
        self.totals.sent += 1
        self.timer = asyncio.get_running_loop().call_later(self.interval, self.report)


async def run(
    host: str,
    port: int,
    devices: int,
    phone_base: int,
    interval: float,
    duration: float,
    ramp_per_s: float,
) -> dict[str, Any]:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    loop = asyncio.get_running_loop()
    totals = Totals()
    transports: list[asyncio.BaseTransport] = []
    started = time.monotonic()
    for i in range(devices):
        try:
            phone = str(phone_base + i)
            transport, _ = await loop.create_connection(
                lambda phone=phone: Device(phone, totals, interval),  # type: ignore[misc]
                host,
                port,
            )
            transports.append(transport)
        except OSError:
            totals.lost += 1
        if ramp_per_s and i % 100 == 99:
            await asyncio.sleep(max(0.0, (i + 1) / ramp_per_s - (time.monotonic() - started)))
    ramp_s = time.monotonic() - started
    waiting = totals.connected - totals.refused
    while totals.online < waiting and time.monotonic() - started < 120:
        await asyncio.sleep(0.2)
        waiting = totals.connected - totals.refused
    online_at = time.monotonic()
    answered_before = totals.answered
    await asyncio.sleep(duration)
    window = time.monotonic() - online_at
    answered = totals.answered - answered_before
    latencies = sorted(totals.latencies)
    for opened in transports:
        opened.close()

    def pct(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] if latencies else 0.0

    return {
        "devices": devices,
        "connected": totals.connected,
        "online": totals.online,
        "refused": totals.refused,
        "lost": totals.lost - len(transports) if totals.lost > len(transports) else 0,
        "ramp_s": round(ramp_s, 2),
        "sent": totals.sent,
        "answered": totals.answered,
        "answered_per_s": round(answered / window, 1),
        "latency_ms_p50": round(pct(0.5) * 1000, 1),
        "latency_ms_p99": round(pct(0.99) * 1000, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.jt808_load", description=__doc__)
    parser.add_argument("--gateway", required=True, help="HOST:PORT")
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--phone-base", type=int, default=14000000000)
    parser.add_argument("--interval", type=float, default=10.0, help="seconds between reports")
    parser.add_argument("--duration", type=float, default=30.0, help="measured seconds")
    parser.add_argument("--ramp-per-s", type=float, default=2000.0, help="new connections/s")
    args = parser.parse_args(argv)
    host, _, port = str(args.gateway).rpartition(":")
    result = asyncio.run(
        run(
            host,
            int(port),
            args.devices,
            args.phone_base,
            args.interval,
            args.duration,
            args.ramp_per_s,
        )
    )
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

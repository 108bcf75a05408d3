"""A cellular vehicle tracker: its own GNSS along a route, JT/T 808 over TCP to a gateway.

    python -m firmware_stubs.tracker --gateway 127.0.0.1:7611 --phone 13800000201 \
        --route ROUTE.geojson [--speed-kmh 60] [--interval 10] [--time-scale 1] \
        [--start-time T] [--terminal-id TRK0001] [--jt808-2019] [--tls-ca CA.crt]

Registers, authenticates, and every `--interval` seconds sends a location report
(0x0200: position, speed, course, time, satellites) of where the vehicle is on the
route at the report clock's time; unanswered reports are kept and sent again
(`firmware_stubs.jt808_terminal`). Prints `READY` once started.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import ssl
import sys
from pathlib import Path

from devices.elock.bodies import Location
from devices.elock.tlv import Extra
from firmware_stubs.clock import ScaledClock, rfc3339, time_scale
from firmware_stubs.gnss.geography import Route, load_route
from firmware_stubs.gnss.motion import Motion
from firmware_stubs.jt808_terminal import Jt808Terminal

#: Status bits: positioned (1), GPS (18) and BeiDou (19) used.
STATUS = (1 << 1) | (1 << 18) | (1 << 19)


def location_at(route: Route, motion: Motion, clock: ScaledClock) -> Location:
    x, y, course = route.at(motion.distance_m)
    lon, lat = route.frame.to_lonlat(x, y)
    return Location(
        alarm=0,
        status=STATUS,
        lat=lat,
        lon=lon,
        alt_m=15,
        speed_kmh=round(motion.speed_mps * 3.6, 1),
        course_deg=round(course) % 360,
        time=clock.now().replace(microsecond=0),
        extras=(Extra(0x31, bytes([12])),),
    )


async def amain(args: argparse.Namespace) -> None:
    host, _, port = str(args.gateway).rpartition(":")
    context = ssl.create_default_context(cafile=str(args.tls_ca)) if args.tls_ca else None
    terminal = Jt808Terminal(
        host,
        int(port),
        args.phone,
        args.terminal_id,
        version=1 if args.jt808_2019 else None,
        tls=context,
        heartbeat_s=min(30.0, args.interval * 2),
    )
    route = load_route(args.route)
    motion = Motion(route.length_m, args.speed_kmh / 3.6)
    clock = ScaledClock(args.start_time, None, args.time_scale)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    async def reports() -> None:
        last = clock.now()
        while True:
            now = clock.now()
            dt = (now - last).total_seconds()
            last = now
            while dt > 0:
                motion.step(min(dt, 1.0))
                dt -= 1.0
            terminal.report(location_at(route, motion, clock))
            await asyncio.sleep(args.interval)

    print("READY", flush=True)
    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(terminal.run()), group.create_task(reports())]
        await stop.wait()
        for task in tasks:
            task.cancel()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m firmware_stubs.tracker",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--gateway", required=True, help="HOST:PORT of bondwatch-jt808")
    parser.add_argument("--phone", required=True, help="terminal phone number (BCD)")
    parser.add_argument("--terminal-id", default="TRK0001", help="terminal id to register with")
    parser.add_argument("--route", type=Path, required=True, help="GeoJSON route to travel")
    parser.add_argument("--speed-kmh", type=float, default=60.0, help="cruise speed")
    parser.add_argument("--interval", type=float, default=10.0, help="report period, s")
    parser.add_argument("--time-scale", type=time_scale, default=1.0, help="report clock speed")
    parser.add_argument("--start-time", type=rfc3339, help="report clock's start time")
    parser.add_argument("--jt808-2019", action="store_true", help="speak the 2019 header form")
    parser.add_argument("--tls-ca", type=Path, help="connect with TLS, trusting this CA")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s tracker %(levelname)s %(message)s",
    )
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(amain(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

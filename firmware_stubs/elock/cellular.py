"""A BondWatch e-lock with its own 4G modem and GNSS: the lock stub over TCP, not a pty.

    python -m firmware_stubs.elock.cellular --gateway 127.0.0.1:7611 [--tls-ca CA.crt] \
        [--route ROUTE.geojson --speed-kmh 60 --stops KM:S,… --loop] \
        -- --lock-id L1 --phone 13800000101 --secret s3cret \
        [every option of `python -m firmware_stubs.elock`]

The lock's state machine, reports, commands and control lines are those of
`firmware_stubs.elock` (see its help); the line to the platform is a cellular JT/T 808
terminal (`firmware_stubs.jt808_terminal`): it registers and authenticates with the
gateway, keeps each report until the gateway answers it, sends unanswered ones again
after a reconnect, and reconnects when the gateway or the network goes away. With
`--route` the lock moves along the route (its own GNSS), at `--speed-kmh` of simulated
time. Prints `READY` once started.
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
from typing import Any

from devices.elock.bodies import Authentication, Body, Location, Registration
from devices.elock.header import Header
from firmware_stubs.elock.__main__ import LockStub, _area, _secret, load_state, parse_args
from firmware_stubs.elock.lock import LockFirmware
from firmware_stubs.gnss.geography import Route, load_route
from firmware_stubs.gnss.motion import Motion, parse_stops
from firmware_stubs.jt808_terminal import Jt808Terminal

logger = logging.getLogger("firmware_stubs.elock.cellular")


class CellularLockStub(LockStub):
    """The lock stub with a cellular terminal for a line."""

    def __init__(
        self,
        firmware: LockFirmware,
        args: argparse.Namespace,
        terminal: Jt808Terminal,
        route: Route | None,
        speed_kmh: float,
        stops: str = "",
        loop: bool = False,
    ) -> None:
        super().__init__(None, firmware, args)  # type: ignore[arg-type]  # no pty
        self.terminal = terminal
        self.route = route
        self.motion = (
            Motion(route.length_m, speed_kmh / 3.6, stops=parse_stops(stops), loop=loop)
            if route is not None
            else None
        )
        self._last_sim: Any = None
        terminal.on_message = self.handle

    def write(self, data: bytes) -> None:
        """Raw bytes (noise, a frame with a wrong check code) go out as they are."""
        self.terminal.write_raw(data)

    def send(self, body: Body, serial: int | None = None, corrupt: bool = False) -> None:
        if isinstance(body, Registration | Authentication):
            return  # the terminal logs in by itself
        if isinstance(body, Location) and not corrupt:
            self.terminal.report(body)  # kept until the gateway answers it
            return
        if corrupt:
            super().send(body, serial, corrupt)
            return
        self.terminal.send(body, serial)

    def handle(self, header: Header, body: Any) -> None:
        self.registered = self.terminal.online.is_set()
        super().handle(header, body)

    def move(self) -> None:
        """Advance along the route to the report clock's time."""
        if self.route is None or self.motion is None:
            return
        now = self.clock.now()
        if self._last_sim is not None:
            dt = (now - self._last_sim).total_seconds()
            while dt > 0:
                step = min(dt, 1.0)
                self.motion.step(step)
                dt -= step
        self._last_sim = now
        x, y, _ = self.route.at(self.motion.distance_m)
        lon, lat = self.route.frame.to_lonlat(x, y)
        self.fw.lat, self.fw.lon = lat, lon

    async def periodic(self) -> None:
        while True:
            self.move()
            self.report()
            self.events(self.fw.drain(self.drain_per_report))
            await asyncio.sleep(self.interval)

    def state_json(self) -> dict[str, Any]:
        state = super().state_json()
        state.update(
            registered=self.terminal.online.is_set(),
            unanswered=len(self.terminal.unanswered),
            answered=self.terminal.answered,
            connections=self.terminal.connections,
        )
        return state


def parse(argv: list[str] | None) -> tuple[argparse.Namespace, argparse.Namespace]:
    parser = argparse.ArgumentParser(
        prog="python -m firmware_stubs.elock.cellular",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--gateway", required=True, help="HOST:PORT of bondwatch-jt808")
    parser.add_argument("--tls-ca", type=Path, help="connect with TLS, trusting this CA")
    parser.add_argument("--terminal-id", help="terminal id to register with (default: lock id)")
    parser.add_argument("--route", type=Path, help="GeoJSON route the lock travels along")
    parser.add_argument("--speed-kmh", type=float, default=60.0, help="cruise speed on the route")
    parser.add_argument("--stops", default="", help="stops on the route: 'km:seconds,…'")
    parser.add_argument("--loop", action="store_true", help="drive the route again at its end")
    parser.add_argument(
        "--resend-after", type=float, default=5.0, help="send an unanswered report again, s"
    )
    ours, rest = parser.parse_known_args(argv)
    return ours, parse_args([a for a in rest if a != "--"])


async def amain(ours: argparse.Namespace, args: argparse.Namespace) -> None:
    firmware = LockFirmware(
        lock_id=args.lock_id,
        secret=_secret(args),
        battery_pct=args.battery,
        lat=args.lat,
        lon=args.lon,
        area=_area([args.area]) if args.area else None,
        state="sealed" if args.sealed_for else "unsealed",
        trip_id=args.sealed_for or None,
    )
    if args.state_file is not None:
        firmware.restore(load_state(args.state_file))
    host, _, port = str(ours.gateway).rpartition(":")
    context = ssl.create_default_context(cafile=str(ours.tls_ca)) if ours.tls_ca else None
    terminal = Jt808Terminal(
        host,
        int(port),
        args.phone,
        ours.terminal_id or args.lock_id[:7],
        version=1 if args.jt808_2019 else None,
        tls=context,
        resend_after_s=ours.resend_after,
        heartbeat_s=min(30.0, max(1.0, args.interval * 2)),
    )
    route = load_route(ours.route) if ours.route else None
    stub = CellularLockStub(firmware, args, terminal, route, ours.speed_kmh, ours.stops, ours.loop)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    server = None
    if args.control_port is not None:
        server = await asyncio.start_server(stub.tcp_client, "127.0.0.1", args.control_port)
    print("READY", flush=True)
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [
                group.create_task(terminal.run(), name="cellular"),
                group.create_task(stub.periodic(), name="reports"),
                group.create_task(stub.stdin_control(), name="stdin-control"),
            ]
            await stop.wait()
            for task in tasks:
                task.cancel()
    finally:
        if server is not None:
            server.close()


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s cellular-elock %(levelname)s %(message)s",
    )
    ours, args = parse(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(amain(ours, args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

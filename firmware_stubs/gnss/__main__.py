"""`python -m firmware_stubs.gnss --route FILE | --replay FILE [options]`.

Prints `LINK <path>` (with `--link`), the pty path, then `READY`; reads control
commands from stdin (and `--control-port`), see `firmware_stubs.gnss.receiver`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from datetime import UTC, datetime
from pathlib import Path

from firmware_stubs.clock import rfc3339, time_scale
from firmware_stubs.gnss.geography import load_route, load_zones
from firmware_stubs.gnss.motion import Motion, parse_stops
from firmware_stubs.gnss.receiver import (
    Settings,
    SimulatedReceiver,
    read_stdin_commands,
    serve_control,
)


def _hdop_range(text: str) -> tuple[float, float]:
    low, _, high = text.partition(":")
    pair = (float(low), float(high or low))
    if not 0 < pair[0] <= pair[1]:
        raise argparse.ArgumentTypeError(f"HDOP range {text!r}: need 0 < LOW <= HIGH")
    return pair


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m firmware_stubs.gnss")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--route", type=Path, help="GeoJSON FeatureCollection with the route")
    source.add_argument("--replay", type=Path, help="gpsd-style NMEA log to replay")
    p.add_argument("--zones", type=Path, help="GeoJSON zones (tunnel/urban change the signal)")
    p.add_argument("--speed-kmh", type=float, default=60.0, help="cruise speed")
    p.add_argument("--accel", type=float, default=1.0, help="acceleration/braking, m/s²")
    p.add_argument("--stops", default="", help='planned stops "km:seconds,..."')
    p.add_argument("--rate", type=float, default=1.0, help="epochs per second, 1-10")
    p.add_argument("--noise-m", type=float, default=3.0, help="horizontal error bound, m")
    p.add_argument(
        "--hdop",
        type=_hdop_range,
        default=(0.7, 1.2),
        help="HDOP outside zones: a value or LOW:HIGH (default 0.7:1.2); the error scales with it",
    )
    p.add_argument(
        "--talker", default="GN", choices=["GN", "GP", "BD", "GB"], help="GGA/RMC/GSA talker"
    )
    p.add_argument(
        "--bds-talker",
        default="BD",
        choices=["BD", "GB"],
        help="BeiDou GSV talker: BD (Chinese convention) or GB (NMEA 4.11)",
    )
    p.add_argument(
        "--time-scale", type=time_scale, default=1.0, help="simulated/wall time ratio (at most 100)"
    )
    p.add_argument("--start-time", type=rfc3339, default=None, help="RFC 3339 start")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--loop", action="store_true", help="start the route again at its end")
    p.add_argument("--link", type=Path, help="stable symlink to the current pty")
    p.add_argument("--control-port", type=int, help="TCP control on 127.0.0.1:PORT")
    args = p.parse_args(argv)
    if not 1.0 <= args.rate <= 10.0:
        p.error("--rate must be between 1 and 10 Hz")
    return args


async def amain(args: argparse.Namespace) -> int:
    settings = Settings(
        rate_hz=args.rate,
        time_scale=args.time_scale,
        noise_m=args.noise_m,
        hdop=args.hdop,
        talker=args.talker,
        bds_talker=args.bds_talker,
        seed=args.seed,
        link=args.link,
        loop=args.loop,
    )
    if args.start_time is not None:
        settings.start_time = args.start_time
    else:
        settings.start_time = datetime.now(UTC).replace(microsecond=0)
    if args.route is not None:
        route = load_route(args.route)
        zones = load_zones(args.zones, route.frame) if args.zones else []
        motion = Motion(
            length_m=route.length_m,
            cruise_mps=args.speed_kmh / 3.6,
            accel_mps2=args.accel,
            stops=parse_stops(args.stops),
            loop=args.loop,
        )
        receiver = SimulatedReceiver(settings, route=route, zones=zones, motion=motion)
        play = receiver.play_route
    else:
        receiver = SimulatedReceiver(settings, replay=args.replay)
        play = receiver.play_replay
    server = await serve_control(receiver, args.control_port) if args.control_port else None
    receiver.announce()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    tasks = [
        asyncio.create_task(play(), name="playback"),
        asyncio.create_task(read_stdin_commands(receiver), name="stdin-control"),
        asyncio.create_task(stop.wait(), name="stop"),
    ]
    await asyncio.wait([tasks[0], tasks[2]], return_when=asyncio.FIRST_COMPLETED)
    if receiver.done.is_set() and not stop.is_set():
        await receiver.drain()
        print("DONE", flush=True)
        await stop.wait()  # keep the port open until told to stop
    for task in tasks:
        task.cancel()
    if server is not None:
        server.close()
    receiver.port.close()
    if settings.link is not None:
        with contextlib.suppress(FileNotFoundError):
            settings.link.unlink()
    return 0


def main(argv: list[str] | None = None) -> int:
    return asyncio.run(amain(parse_args(argv)))


if __name__ == "__main__":
    raise SystemExit(main())

"""`python -m firmware_stubs.barrier`: the simulated barrier controller on a new pty.

Prints the pty path, then `READY`, then `CONTROL 127.0.0.1:<port>`.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import time

from firmware_stubs.barrier.control import serve_control
from firmware_stubs.barrier.model import BarrierPlant
from firmware_stubs.barrier.rtu_slave import RtuSlave
from firmware_stubs.pty import VirtualPort


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m firmware_stubs.barrier", description=__doc__)
    parser.add_argument("--unit-id", type=int, default=1, help="Modbus unit id (1..247)")
    parser.add_argument(
        "--control-port", type=int, default=0, help="TCP control port on 127.0.0.1 (0: any free)"
    )
    parser.add_argument("--travel-s", type=float, default=3.0, help="seconds closed → open")
    parser.add_argument(
        "--mode", choices=("pulse", "hold"), default="pulse", help="how the relays drive the arm"
    )
    parser.add_argument(
        "--auto-close-s",
        type=float,
        default=None,
        help="close this long after the truck leaves loop 1 (pulse mode; default: never)",
    )
    parser.add_argument("--log-level", default="WARNING", help="stderr log level")
    args = parser.parse_args(argv)
    if not 1 <= args.unit_id <= 247:
        parser.error("--unit-id must be 1..247")
    return args


async def serve(args: argparse.Namespace) -> None:
    loop = asyncio.get_running_loop()
    port = VirtualPort.open()
    plant = BarrierPlant(
        travel_s=args.travel_s, hold_mode=args.mode == "hold", auto_close_s=args.auto_close_s
    )
    slave = RtuSlave(port.master_fd, args.unit_id, plant)
    slave.start(loop)
    server = await serve_control(args.control_port, plant, slave)
    control_port = server.sockets[0].getsockname()[1]
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    port.announce()
    print(f"CONTROL 127.0.0.1:{control_port}", flush=True)

    async def ticker() -> None:
        while True:  # auto-close fires on time even when nobody polls
            plant.tick(time.monotonic())
            await asyncio.sleep(0.05)

    tick_task = asyncio.create_task(ticker(), name="plant-ticker")
    try:
        await stop.wait()
    finally:
        tick_task.cancel()
        server.close()
        slave.stop(loop)
        port.close()


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(message)s")
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()

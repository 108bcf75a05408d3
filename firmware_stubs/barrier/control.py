"""The stub's control channel: one command per line over TCP on 127.0.0.1.

Each command gets one reply line: `OK {json state}` or `ERR reason`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time

from firmware_stubs.barrier.model import BarrierPlant
from firmware_stubs.barrier.rtu_slave import RtuSlave

logger = logging.getLogger(__name__)

HELP = (
    "arrive [LANE] | leave [LANE] | jam on|off | silent on|off | crc N (every N-th reply, "
    "0 off) | stuck open|closed on|off|clear | fault on|off | module_error on|off | "
    "reboot [SECONDS] | state"
)


def _on_off(word: str) -> bool:
    if word not in ("on", "off"):
        raise ValueError(f"expected on or off, not {word!r}")
    return word == "on"


def apply_command(line: str, plant: BarrierPlant, slave: RtuSlave, now: float) -> str:
    """Carry out one control line and return the reply line."""
    words = line.split()
    if not words:
        return "ERR empty command; " + HELP
    verb, args = words[0].lower(), words[1:]
    try:
        if verb in ("arrive", "leave"):
            lane = int(args[0]) if args else 1
            if lane not in (1, 2):
                raise ValueError(f"lane {lane} does not exist (1 or 2)")
            plant.set_loop(lane, verb == "arrive", now)
        elif verb == "jam":
            plant.jammed = _on_off(args[0])
        elif verb == "silent":
            slave.silent = _on_off(args[0])
        elif verb == "crc":
            every = int(args[0])
            if every < 0:
                raise ValueError("crc N needs N >= 0")
            slave.crc_every = every
        elif verb == "stuck":
            which, how = args[0], args[1]
            if which not in ("open", "closed") or how not in ("on", "off", "clear"):
                raise ValueError("stuck open|closed on|off|clear")
            value = None if how == "clear" else how
            if which == "open":
                plant.stuck_open_limit = value  # type: ignore[assignment]
            else:
                plant.stuck_closed_limit = value  # type: ignore[assignment]
        elif verb == "fault":
            plant.fault = _on_off(args[0])
            if plant.fault:
                plant.motion = 0
        elif verb == "module_error":
            plant.module_error = _on_off(args[0])
        elif verb == "reboot":
            seconds = float(args[0]) if args else 1.0
            if not 0 <= seconds <= 60:
                raise ValueError("reboot SECONDS needs 0..60")
            plant.reset_outputs()
            slave.silent_until = now + seconds
        elif verb != "state":
            return f"ERR unknown command {verb!r}; " + HELP
    except (IndexError, ValueError) as err:
        return f"ERR {err or 'missing argument'}; " + HELP
    plant.tick(now)
    state = plant.snapshot() | {
        "silent": slave.silent or slave.silent_until > now,
        "crc_every": slave.crc_every,
        "requests": slave.requests,
    }
    return "OK " + json.dumps(state, separators=(",", ":"))


async def serve_control(port: int, plant: BarrierPlant, slave: RtuSlave) -> asyncio.Server:
    """Listen on 127.0.0.1:`port` (0: any free port) for control lines."""

    async def session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                reply = apply_command(
                    line.decode("utf-8", "replace"), plant, slave, time.monotonic()
                )
                logger.info("control %r -> %s", line.strip(), reply[:60])
                writer.write(reply.encode() + b"\n")
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass  # the agent hung up, or the stub is stopping
        finally:
            writer.close()

    return await asyncio.start_server(session, "127.0.0.1", port)

"""A BondWatch e-lock on a new pty.

    python -m firmware_stubs.elock --lock-id L1 --phone 13800000001 --secret s3cret \
        [--control-port 7011] [--interval 5] [--lat 22.5 --lon 113.9] [--area 22.5,113.9,500] \
        [--sealed-for TRIP] [--time-scale 10 --start-time T --start-wall UNIX_S] \
        [--state-file PATH]

Prints the pty path, then READY. It registers (0x0100), authenticates (0x0102) when
its registration is answered (an 0x8100 naming another serial is not its answer),
reports its state every `--interval` seconds and on every event (0x0200 with the
BondWatch block), and carries out seal / unseal / query / set_area commands (0x8900)
with answers (0x0900) matched by serial number; only a repeat of the very same command
(message id, serial and body) gets a cached answer again. Seal, unseal and set_area
need a single-use token; every report carries the next report counter and its MAC
(docs/lock-profile.md). `--state-file` keeps both counters across restarts, as a real
lock's flash does (written before the report leaves or the answer is sent).

Its reports carry the wall-clock time, in whole seconds as a real lock's do; beside a
time-scaled GNSS stub (the demo) they carry the same simulated time instead: the clock
reads `--start-time` at the wall instant `--start-wall` and runs `--time-scale` times as
fast (`firmware_stubs.clock`). Unseal tokens are still checked against the wall clock:
the server that signs them keeps real time.

Control lines (on stdin, and on TCP 127.0.0.1:`--control-port` when given), one per
line, each answered `OK {json state}` or `ERR reason`:

    status | report | rope_cut | shell_tampered | shackle_open | shackle_close
    motor_stuck on|off | noise [N] | drop_acks [N] | bad_checksum
    position LAT LON | area LAT LON RADIUS_M | area none | battery PCT | drain PCT
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import stat
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from devices.elock import profile
from devices.elock.block import Area
from devices.elock.bodies import (
    Authentication,
    Location,
    Registration,
    RegistrationResponse,
    TerminalResponse,
    Transparent,
)
from devices.elock.codec import decode, encode
from devices.elock.exchange import SerialCounter
from devices.elock.framing import FLAG, FrameSplitter, escape, xor_check
from devices.elock.header import Header
from devices.elock.tlv import Extra
from devices.errors import FrameError
from firmware_stubs.clock import ScaledClock, rfc3339, time_scale
from firmware_stubs.elock.lock import LockFirmware
from firmware_stubs.pty import VirtualPort

logger = logging.getLogger("firmware_stubs.elock")

STATUS_POSITIONED = 1 << 1
STATUS_BEIDOU = 1 << 19


class LockStub:
    """Glue between the pty, the control channel and `LockFirmware`."""

    def __init__(self, port: VirtualPort, firmware: LockFirmware, args: argparse.Namespace) -> None:
        self.port = port
        self.fw = firmware
        self.phone: str = args.phone
        self.version: int | None = 1 if args.jt808_2019 else None
        self.interval: float = args.interval
        self.drain_per_report: float = args.drain
        self.clock = ScaledClock(args.start_time, args.start_wall, args.time_scale)
        self.serials = SerialCounter()
        #: The serial of the last registration sent: only its answer registers the lock.
        self.registration_serial: int | None = None
        self.registered = False
        self.auth_code = ""
        self.drop_acks = 0
        self.bad_checksum_next = 0
        self.frames_in_bad = 0
        self.splitter = FrameSplitter()
        self.state_file: Path | None = args.state_file

    # --- output --------------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        try:
            os.write(self.port.master_fd, data)
        except BlockingIOError:
            logger.warning("pty buffer full (nobody reading?): %d bytes dropped", len(data))
        except OSError as err:
            logger.warning("pty write failed: %s", err)

    def send(self, body: Any, serial: int | None = None, corrupt: bool = False) -> None:
        header = Header(
            msg_id=body.MSG_ID,
            phone=self.phone,
            serial=self.serials.next() if serial is None else serial,
            version=self.version,
        )
        if corrupt:
            data = body.encode(self.version)
            content = header.encode(len(data)) + data
            wrong = xor_check(content) ^ 0x5A
            frame = bytes([FLAG]) + escape(content + bytes([wrong])) + bytes([FLAG])
        else:
            frame = encode(header, body)
        self.write(frame)

    def save(self) -> None:
        """Write the counters to the state file (atomically), when there is one."""
        if self.state_file is not None:
            save_state(self.state_file, self.fw.persisted())

    def report(self, event: profile.LockEventName = "status") -> None:
        fw = self.fw
        moment = self.clock.now().replace(microsecond=0)
        block = fw.block(event, moment)
        self.save()  # the counter is used before the report leaves: never twice
        status = STATUS_BEIDOU
        lat = lon = 0.0
        if fw.lat is not None and fw.lon is not None:
            status |= STATUS_POSITIONED
            lat, lon = fw.lat, fw.lon
        location = Location(
            alarm=0,
            status=status,
            lat=lat,
            lon=lon,
            alt_m=12,
            speed_kmh=0.0,
            course_deg=0,
            time=moment,
            extras=(
                Extra(0x31, bytes([9])),
                Extra(profile.TLV_BONDWATCH, block.encode()),
            ),
        )
        corrupt = self.bad_checksum_next > 0
        if corrupt:
            self.bad_checksum_next -= 1
        self.send(location, corrupt=corrupt)

    def events(self, names: list[profile.LockEventName]) -> None:
        for name in names:
            self.report(name)

    def register(self) -> None:
        self.registration_serial = self.serials.next()
        self.send(
            Registration(
                province=44,
                city=300,
                manufacturer="BWLCK",
                model="BW-ELOCK-1",
                terminal_id=self.fw.lock_id[:7],
                plate_colour=0,
                plate="",
            ),
            serial=self.registration_serial,
        )

    # --- input ---------------------------------------------------------------------------

    def on_readable(self) -> None:
        try:
            data = os.read(self.port.master_fd, 4096)
        except BlockingIOError:
            return
        except OSError as err:
            logger.debug("pty read: %s", err)
            return
        for raw in self.splitter.feed(data):
            try:
                message = decode(raw)
            except FrameError as err:
                self.frames_in_bad += 1
                logger.warning("dropped frame from the platform: %s", err)
                continue
            self.handle(message.header, message.body)

    def handle(self, header: Header, body: Any) -> None:
        if isinstance(body, RegistrationResponse):
            if body.reply_serial != self.registration_serial:
                logger.info("registration answer for serial %d: not ours", body.reply_serial)
                return
            if body.result == 0:
                self.registered = True
                self.auth_code = body.auth_code
                self.send(Authentication(body.auth_code, "860000000000001", "BW-1.0"))
            return
        if isinstance(body, Transparent) and body.kind == profile.TRANSPARENT_TYPE:
            try:
                block = body.bondwatch
            except FrameError as err:
                logger.warning("bad command block: %s", err)
                self.send(TerminalResponse(header.serial, header.msg_id, 2))
                return
            if block is None or block.command is None:
                self.send(TerminalResponse(header.serial, header.msg_id, 2))
                return
            answer, names = self.fw.command(
                header.serial,
                block,
                datetime.now(UTC),
                body=body.encode(header.version),
                msg_id=header.msg_id,
            )
            self.save()  # a used token stays used across a restart
            if self.drop_acks > 0:
                self.drop_acks -= 1
                logger.info("dropping the answer to serial %d on purpose", header.serial)
            else:
                self.send(TerminalResponse(header.serial, header.msg_id, 0))
                self.send(Transparent(profile.TRANSPARENT_TYPE, answer.encode()))
            self.events(names)

    # --- control -------------------------------------------------------------------------

    def state_json(self) -> dict[str, Any]:
        fw = self.fw
        return {
            "lock_id": fw.lock_id,
            "state": fw.state,
            "trip_id": fw.trip_id,
            "battery_pct": round(fw.battery_pct, 2),
            "wrong_passwords": fw.wrong_passwords,
            "lat": fw.lat,
            "lon": fw.lon,
            "area": None if fw.area is None else vars(fw.area),
            "motor_stuck": fw.motor_stuck,
            "registered": self.registered,
            "drop_acks": self.drop_acks,
            "frames_in_bad": self.frames_in_bad,
            "report_counter": fw.report_counter,
            "token_counter": fw.token_counter,
        }

    def control(self, line: str) -> str:
        words = line.split()
        if not words:
            return ""
        verb, rest = words[0].lower(), words[1:]
        try:
            self._control(verb, rest)
        except (ValueError, IndexError) as err:
            return f"ERR {verb}: {err}"
        return "OK " + json.dumps(self.state_json())

    def _control(self, verb: str, rest: list[str]) -> None:
        fw = self.fw
        if verb in ("status", "report"):
            if verb == "report":
                self.report()
        elif verb == "rope_cut":
            self.events(fw.rope_cut())
        elif verb == "shell_tampered":
            self.events(fw.shell_tampered())
        elif verb == "shackle_open":
            self.events(fw.shackle_opened())
        elif verb == "shackle_close":
            self.events(fw.shackle_closed_again())
        elif verb == "motor_stuck":
            fw.motor_stuck = (rest[0] if rest else "on").lower() in ("on", "1", "true")
        elif verb == "noise":
            self.write(os.urandom(int(rest[0]) if rest else 32))
        elif verb == "drop_acks":
            self.drop_acks = int(rest[0]) if rest else 1
        elif verb == "bad_checksum":
            self.bad_checksum_next += 1
            self.report()
        elif verb == "position":
            fw.lat, fw.lon = float(rest[0]), float(rest[1])
        elif verb == "area":
            fw.area = None if rest[0] == "none" else _area(rest)
        elif verb == "battery":
            self.events(fw.set_battery(float(rest[0])))
        elif verb == "drain":
            self.events(fw.drain(float(rest[0])))
        else:
            raise ValueError("unknown control command")

    # --- tasks ---------------------------------------------------------------------------

    async def periodic(self) -> None:
        while True:
            if not self.registered:
                self.register()
            self.report()
            self.events(self.fw.drain(self.drain_per_report))
            await asyncio.sleep(self.interval)

    async def stdin_control(self) -> None:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        mode = os.fstat(sys.stdin.fileno()).st_mode
        if not (stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or os.isatty(sys.stdin.fileno())):
            # /dev/null or a file (CI runs with no standard input): epoll cannot watch it.
            logger.info("no control on stdin (not a pipe or terminal); use --control-port")
            return
        try:
            await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        except (ValueError, OSError) as err:
            logger.info("no control on stdin: %s", err)
            return
        while line := await reader.readline():
            answer = self.control(line.decode("utf-8", "replace"))
            if answer:
                print(answer, flush=True)

    async def tcp_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                answer = self.control(line.decode("utf-8", "replace"))
                if answer:
                    writer.write(answer.encode() + b"\n")
                    await writer.drain()
        finally:
            writer.close()


def _area(words: list[str]) -> Area:
    if len(words) == 1:
        words = words[0].split(",")
    return Area(float(words[0]), float(words[1]), int(float(words[2])))


def load_state(path: Path) -> dict[str, Any]:
    """The counters saved in `path` ({} when it does not exist yet)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as err:
        raise SystemExit(f"lock state file {path} is unreadable: {err}") from err
    if not isinstance(data, dict):
        raise SystemExit(f"lock state file {path} must hold a JSON object")
    return data


def save_state(path: Path, state: dict[str, Any]) -> None:
    """Replace `path` with `state` atomically (a crash leaves the old or the new file)."""
    with tempfile.NamedTemporaryFile(
        "w", encoding="utf-8", dir=path.parent, prefix=path.name, suffix=".tmp", delete=False
    ) as tmp:
        json.dump(state, tmp)
        tmp.flush()
        os.fsync(tmp.fileno())
    os.replace(tmp.name, path)


def _secret(args: argparse.Namespace) -> bytes:
    if args.secret_file:
        return Path(args.secret_file).read_bytes().strip()
    if args.secret:
        return str(args.secret).encode("utf-8")
    raise SystemExit("give --secret or --secret-file")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m firmware_stubs.elock",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--lock-id", required=True, help="the lock's id (ASCII, ≤ 32 chars)")
    parser.add_argument("--phone", default="13800000001", help="terminal phone number (BCD)")
    parser.add_argument("--secret", help="per-lock unseal secret (prefer --secret-file)")
    parser.add_argument("--secret-file", help="file holding the per-lock unseal secret")
    parser.add_argument("--control-port", type=int, help="TCP control port on 127.0.0.1")
    parser.add_argument("--interval", type=float, default=5.0, help="status report period, s")
    parser.add_argument("--drain", type=float, default=0.05, help="battery %% used per report")
    parser.add_argument("--battery", type=float, default=100.0, help="initial battery %%")
    parser.add_argument("--lat", type=float, help="initial latitude")
    parser.add_argument("--lon", type=float, help="initial longitude")
    parser.add_argument("--area", help="allowed unseal area LAT,LON,RADIUS_M")
    parser.add_argument(
        "--state-file",
        type=Path,
        help="JSON file keeping the report and token counters across restarts (the lock's "
        "flash); without it they start at 0",
    )
    parser.add_argument("--jt808-2019", action="store_true", help="speak the 2019 header form")
    parser.add_argument(
        "--sealed-for",
        metavar="TRIP_ID",
        help="start sealed for this trip, as after sealing at the departure gate (the demo)",
    )
    parser.add_argument(
        "--time-scale",
        type=time_scale,
        default=1.0,
        help="report clock: simulated seconds per wall second (at most 100)",
    )
    parser.add_argument(
        "--start-time", type=rfc3339, help="report clock: the time it reads at --start-wall"
    )
    parser.add_argument(
        "--start-wall",
        type=float,
        help="report clock: the wall instant (Unix seconds) it reads --start-time; "
        "default: when the lock starts",
    )
    return parser.parse_args(argv)


async def amain(args: argparse.Namespace) -> None:
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
        try:
            firmware.restore(load_state(args.state_file))
        except ValueError as err:
            raise SystemExit(f"lock state file {args.state_file}: {err}") from err
    port = VirtualPort.open()
    stub = LockStub(port, firmware, args)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_reader(port.master_fd, stub.on_readable)
    server = None
    if args.control_port is not None:
        server = await asyncio.start_server(stub.tcp_client, "127.0.0.1", args.control_port)
    port.announce()
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [
                group.create_task(stub.periodic(), name="reports"),
                group.create_task(stub.stdin_control(), name="stdin-control"),
            ]
            await stop.wait()
            for task in tasks:
                task.cancel()
    finally:
        loop.remove_reader(port.master_fd)
        if server is not None:
            server.close()
        port.close()


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s elock-stub %(levelname)s %(message)s",
    )
    args = parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(amain(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The simulated receiver: route playback or log replay onto a pty, with faults.

Control commands (stdin lines or `--control-port` TCP lines; durations are
*simulated* seconds, divided by `--time-scale` for wall time):

    fault jam SECONDS          no fix (receiver keeps talking, empty fields)
    fault spoof METRES [SECONDS]  position jumps METRES north-east (until `clear`)
    fault checksum N           next N sentences carry a wrong checksum
    fault truncate N           next N sentences are cut short (no checksum, no CRLF)
    fault garbage N            N random bytes now
    fault baud SECONDS         bytes as seen at a wrong baud rate (garbage) for a while
    unplug SECONDS             close the pty (reader gets EIO/hangup), then a new pty
    clear                      end every fault
    status                     print the state
A JSON line `{"cmd": "fault", "args": ["jam", 30]}` is the same as `fault jam 30`.
Each command is answered with one line `OK ...` or `ERR ...`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import random
import re
import stat
import sys
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from firmware_stubs.gnss.geography import Route, Zone
from firmware_stubs.gnss.motion import Motion
from firmware_stubs.gnss.sentences_out import EpochState, epoch_sentences
from firmware_stubs.pty import VirtualPort

GPS_PRNS = (2, 5, 12, 15, 18, 21, 25, 29, 31)
BDS_PRNS = (6, 9, 14, 16, 19, 27, 33, 36, 39)  # BD/GB talkers: BeiDou numbering 1-63
_TIME_FIELD = re.compile(rb"^\$..(GGA|RMC|GNS|ZDA),(\d{6}(?:\.\d+)?)")
_GLL_TIME = re.compile(rb"^\$..GLL,[^,]*,[^,]*,[^,]*,[^,]*,(\d{6}(?:\.\d+)?)")


@dataclass
class Faults:
    jam_until: float = -1.0
    spoof_m: float = 0.0
    spoof_until: float = math.inf
    checksum_left: int = 0
    truncate_left: int = 0
    baud_until: float = -1.0

    def clear(self) -> None:
        self.__init__()  # type: ignore[misc]


@dataclass
class Settings:
    rate_hz: float = 1.0
    time_scale: float = 1.0
    start_time: datetime = field(default_factory=lambda: datetime(2026, 11, 23, 8, 0, 0))
    noise_m: float = 3.0
    #: HDOP outside zones, drawn uniformly from this range each epoch.
    hdop: tuple[float, float] = (0.7, 1.2)
    talker: str = "GN"
    bds_talker: str = "BD"
    seed: int = 1
    link: Path | None = None
    loop: bool = False


class SimulatedReceiver:
    def __init__(
        self,
        settings: Settings,
        route: Route | None = None,
        zones: list[Zone] | None = None,
        motion: Motion | None = None,
        replay: Path | None = None,
    ) -> None:
        self.settings = settings
        self.route = route
        self.zones = zones or []
        self.motion = motion
        self.replay = replay
        self.rng = random.Random(settings.seed)
        self.faults = Faults()
        self.sim_s = 0.0
        self.port = VirtualPort.open()
        self._unsent = bytearray()  # what the port has not taken yet (`write`)
        self._multipath: tuple[float, float, int] | None = None
        self.done = asyncio.Event()
        self._link()

    # ---------------------------------------------------------------- port
    def _link(self) -> None:
        link = self.settings.link
        if link is None:
            return
        tmp = link.with_name(link.name + ".tmp")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        tmp.symlink_to(self.port.path)
        tmp.replace(link)

    def announce(self) -> None:
        if self.settings.link is not None:
            print(f"LINK {self.settings.link}", flush=True)
        self.port.announce()

    def write(self, data: bytes) -> None:
        """Send one epoch's output. What the port does not take at once (a slow reader)
        goes first at the next write, so a reader never gets half a sentence followed by
        the next one; while the port still takes nothing, new output is lost whole —
        nobody reading, as with a real receiver."""
        if self.port.master_fd < 0:
            return
        if self.sim_s < self.faults.baud_until:
            data = bytes((b * 7 + 0x80 | (b >> 3)) & 0xFF for b in data[: len(data) // 2])
        if self._unsent:
            self._send_unsent()
            if self._unsent:
                return
        self._unsent += data
        self._send_unsent()

    def _send_unsent(self) -> None:
        try:
            sent = os.write(self.port.master_fd, self._unsent)
        except (BlockingIOError, OSError):
            return
        del self._unsent[:sent]

    async def drain(self, timeout_s: float = 5.0) -> None:
        """Wait (a while) until the transmit FIFO is empty: the end of a playback."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        while self._unsent and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.02)
            self._send_unsent()

    async def unplug(self, seconds: float) -> None:
        self.port.close()
        self.port.master_fd = -1
        self._unsent.clear()
        if self.settings.link is not None:
            with contextlib.suppress(FileNotFoundError):
                self.settings.link.unlink()
        await asyncio.sleep(seconds / self.settings.time_scale)
        self.port = VirtualPort.open()
        self._link()
        print(f"REPLUGGED {self.port.path}", flush=True)

    # ------------------------------------------------------------- control
    async def command(self, line: str) -> str:
        line = line.strip()
        if not line:
            return ""
        if line.startswith("{"):
            try:
                obj = json.loads(line)
                line = " ".join([str(obj["cmd"]), *map(str, obj.get("args", []))])
            except (ValueError, KeyError, TypeError) as err:
                return f"ERR bad JSON command: {err}"
        words = line.split()
        try:
            return await self._do(words)
        except (IndexError, ValueError) as err:
            return f"ERR {line!r}: {err}"

    async def _do(self, words: list[str]) -> str:
        f = self.faults
        now = self.sim_s
        if words[0] == "fault":
            kind = words[1]
            if kind == "jam":
                f.jam_until = now + float(words[2])
            elif kind == "spoof":
                f.spoof_m = float(words[2])
                f.spoof_until = now + float(words[3]) if len(words) > 3 else math.inf
            elif kind == "checksum":
                f.checksum_left = int(words[2])
            elif kind == "truncate":
                f.truncate_left = int(words[2])
            elif kind == "garbage":
                self.write(bytes(self.rng.randrange(256) for _ in range(int(words[2]))))
            elif kind == "baud":
                f.baud_until = now + float(words[2])
            else:
                raise ValueError(f"unknown fault {kind!r}")
            return f"OK fault {kind}"
        if words[0] == "unplug":
            asyncio.get_running_loop().create_task(self.unplug(float(words[1])))
            return "OK unplug"
        if words[0] == "clear":
            f.clear()
            return "OK clear"
        if words[0] == "status":
            return f"OK sim_s={self.sim_s:.1f} port={self.port.path} faults={f}"
        raise ValueError("unknown command")

    # ---------------------------------------------------------- playback
    def _emit(self, sentences: list[str]) -> None:
        out = bytearray()
        for text in sentences:
            data = text.encode("latin-1")
            if self.faults.checksum_left > 0:
                self.faults.checksum_left -= 1
                bad = (int(data[-4:-2], 16) ^ 0x5A) & 0xFF
                data = data[:-4] + f"{bad:02X}".encode() + b"\r\n"
            elif self.faults.truncate_left > 0:
                self.faults.truncate_left -= 1
                data = data[: max(7, len(data) // 2)]
            out += data
        self.write(bytes(out))

    def _state(self) -> EpochState:
        assert self.route is not None
        assert self.motion is not None
        s = self.settings
        x, y, course = self.route.at(self.motion.distance_m)
        zone_kinds = {z.kind for z in self.zones if z.contains(x, y)}
        fix = "tunnel" not in zone_kinds and self.sim_s >= self.faults.jam_until
        urban = "urban" in zone_kinds
        hdop = self.rng.uniform(1.6, 3.2) if urban else self.rng.uniform(*s.hdop)
        # Error grows with HDOP (sigma per axis = HDOP x --noise-m / 3.6), bounded by
        # --noise-m outside urban multipath.
        sigma = s.noise_m / 3.0 * hdop / 1.2
        dx, dy = self.rng.gauss(0, sigma), self.rng.gauss(0, sigma)
        norm = math.hypot(dx, dy)
        limit = s.noise_m * (2.0 if urban else 1.0)
        if norm > limit:
            dx, dy = dx * limit / norm, dy * limit / norm
        if urban:
            if self._multipath is None and self.rng.random() < 0.08:
                angle = self.rng.uniform(0, 2 * math.pi)
                jump = self.rng.uniform(20.0, 60.0)
                self._multipath = (jump * math.sin(angle), jump * math.cos(angle), 3)
            if self._multipath is not None:
                mx, my, left = self._multipath
                dx, dy = dx + mx, dy + my
                self._multipath = (mx, my, left - 1) if left > 1 else None
        if self.faults.spoof_m and self.sim_s < self.faults.spoof_until:
            dx += self.faults.spoof_m / math.sqrt(2)
            dy += self.faults.spoof_m / math.sqrt(2)
        lon, lat = self.route.frame.to_lonlat(x + dx, y + dy)
        n_gps = self.rng.randint(6, len(GPS_PRNS)) if fix else 0
        n_bds = self.rng.randint(5, len(BDS_PRNS)) if fix else 0
        return EpochState(
            time=s.start_time + timedelta(seconds=self.sim_s),
            lat=lat,
            lon=lon,
            alt_m=12.0 + self.rng.gauss(0, s.noise_m / 3.0),
            speed_mps=self.motion.speed_mps,
            course_deg=course,
            hdop=hdop,
            fix=fix,
            gps_prns=GPS_PRNS[:n_gps],
            bds_prns=BDS_PRNS[:n_bds],
        )

    async def play_route(self) -> None:
        assert self.motion is not None
        s = self.settings
        dt = 1.0 / s.rate_hz
        loop = asyncio.get_running_loop()
        next_wall = loop.time()
        while not self.motion.finished:
            self._emit(epoch_sentences(self._state(), s.talker, self.rng, s.bds_talker))
            self.motion.step(dt)
            self.sim_s += dt
            next_wall += dt / s.time_scale
            await asyncio.sleep(max(0.0, next_wall - loop.time()))
        self.done.set()

    async def play_replay(self) -> None:
        assert self.replay is not None
        raw = self.replay.read_bytes()
        lines = [ln for ln in raw.splitlines(keepends=True) if not ln.startswith(b"#")]
        last: float | None = None
        for line in lines:
            stamp = _line_seconds(line)
            if stamp is not None:
                if last is not None and stamp != last:
                    step = stamp - last
                    if step < 0:
                        step += 86400 if step < -43200 else 0
                    step = min(max(step, 0.0), 5.0)
                    self.sim_s += step
                    await asyncio.sleep(step / self.settings.time_scale)
                last = stamp
            if self.sim_s < self.faults.jam_until:
                continue
            self._emit([line.decode("latin-1")])
        self.done.set()


def _line_seconds(line: bytes) -> float | None:
    match = _TIME_FIELD.match(line) or _GLL_TIME.match(line)
    if match is None:
        return None
    text = match.groups()[-1].decode()
    return int(text[0:2]) * 3600 + int(text[2:4]) * 60 + float(text[4:])


async def read_stdin_commands(receiver: SimulatedReceiver) -> None:
    loop = asyncio.get_running_loop()
    mode = os.fstat(sys.stdin.fileno()).st_mode
    if not (stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or sys.stdin.isatty()):
        return  # a regular file or /dev/null cannot be watched by the event loop
    reader = asyncio.StreamReader()
    try:
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    except (ValueError, OSError):
        return
    while line := await reader.readline():
        answer = await receiver.command(line.decode("utf-8", "replace"))
        if answer:
            print(answer, flush=True)


async def serve_control(receiver: SimulatedReceiver, port: int) -> asyncio.Server:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while line := await reader.readline():
            answer = await receiver.command(line.decode("utf-8", "replace"))
            writer.write((answer or "OK").encode() + b"\n")
            await writer.drain()
        writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", port)

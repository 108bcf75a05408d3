"""A simulated cellular JT/T 808 terminal's network side: TCP (or TLS) to a platform.

What a real 4G lock or tracker does, and the gateway relies on: it registers (0x0100)
once and keeps the authentication code, authenticates (0x0102) on every connection,
sends a heartbeat (0x0002) when it has nothing else to say, and keeps every report
until the platform answers it (0x8001 result 0): unanswered reports are sent again —
after `resend_after_s`, and at once after a reconnect, with their own serial numbers —
so a gateway or network failure loses nothing. Reconnects with backoff. Frames from the
platform other than answers go to `on_message` (commands).

An answer is taken only when it names what was sent: the registration response (0x8100)
the serial of the registration, a platform response (0x8001) the serial **and** the
message id of the authentication or of a kept report — a stray or stale answer (another
serial, or the same serial answering another message) never marks a report as stored.
Serial numbers start at a random value (`devices.elock.exchange.SerialCounter`), wrap
from 0xFFFF to 0, and skip the serials of reports still kept, so that two kept reports
never share one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from devices.elock.bodies import (
    MSG_AUTHENTICATION,
    Authentication,
    BatchLocation,
    Body,
    Heartbeat,
    Location,
    PlatformResponse,
    Registration,
    RegistrationResponse,
)
from devices.elock.codec import decode, encode
from devices.elock.exchange import SERIAL_SPACE, SerialCounter
from devices.elock.framing import FrameSplitter
from devices.elock.header import Header
from devices.errors import FrameError

logger = logging.getLogger(__name__)

MessageCallback = Callable[[Header, Body], None]
#: What a terminal keeps until the platform answers it.
Report = Location | BatchLocation
#: Reports kept at most: fewer than serial numbers, so that each has its own.
MAX_KEPT = SERIAL_SPACE // 2


@dataclass
class _Kept:
    msg_id: int
    frame: bytes
    sent_at: float


class Jt808Terminal:
    def __init__(
        self,
        host: str,
        port: int,
        phone: str,
        terminal_id: str,
        *,
        version: int | None = None,
        tls: ssl.SSLContext | None = None,
        on_message: MessageCallback | None = None,
        resend_after_s: float = 10.0,
        heartbeat_s: float = 30.0,
        max_kept: int = MAX_KEPT,
        first_serial: int | None = None,
    ) -> None:
        """`first_serial`: the serial of the first message (None: at random)."""
        if not 1 <= max_kept <= MAX_KEPT:
            raise ValueError(
                f"max_kept is 1 to {MAX_KEPT} (one serial number each), not {max_kept}"
            )
        self.host, self.port, self.phone, self.terminal_id = host, port, phone, terminal_id
        self.version = version
        self.tls = tls
        self.on_message = on_message
        self.resend_after_s = resend_after_s
        self.heartbeat_s = heartbeat_s
        self.max_kept = max_kept
        self.auth_code = ""
        self.online = asyncio.Event()
        self.unanswered: OrderedDict[int, _Kept] = OrderedDict()
        self.answered = 0
        self.refusals: list[int] = []
        self.connections = 0
        self._serials = SerialCounter(first_serial)
        self._writer: asyncio.StreamWriter | None = None
        self._registration_serial = -1
        self._auth_serial = -1
        self._last_sent = 0.0

    def _next_serial(self) -> int:
        """The next serial number not held by a kept report (their answers name them)."""
        while (serial := self._serials.next()) in self.unanswered:
            pass
        return serial

    def frame(self, body: Body, serial: int | None = None) -> tuple[int, bytes]:
        serial = self._next_serial() if serial is None else serial
        header = Header(msg_id=body.MSG_ID, phone=self.phone, serial=serial, version=self.version)
        return serial, encode(header, body)

    def write_raw(self, frame: bytes) -> None:
        writer = self._writer
        if writer is not None and not writer.is_closing():
            writer.write(frame)
            self._last_sent = time.monotonic()

    def send(self, body: Body, serial: int | None = None) -> int:
        """Send now if connected, not kept (answers to the platform, heartbeats)."""
        serial, data = self.frame(body, serial)
        self.write_raw(data)
        return serial

    def report(self, body: Report) -> int:
        """Send a report and keep it until the platform answers it (sent on connect when
        offline now). The oldest is dropped beyond `max_kept` (a full flash)."""
        while len(self.unanswered) >= self.max_kept:
            self.unanswered.popitem(last=False)
        serial, data = self.frame(body)
        self.unanswered[serial] = _Kept(body.MSG_ID, data, time.monotonic())
        if self.online.is_set():
            self.write_raw(data)
        return serial

    # -- running --------------------------------------------------------------------------

    async def run(self) -> None:
        """Connect and serve until cancelled, reconnecting with backoff."""
        delay = 0.2
        while True:
            try:
                reader, writer = await asyncio.open_connection(self.host, self.port, ssl=self.tls)
            except OSError as err:
                logger.debug("terminal %s: cannot connect: %s", self.phone, err)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            delay = 0.2
            self.connections += 1
            self._writer = writer
            self._registration_serial = self._auth_serial = -1  # a new connection's own
            try:
                async with asyncio.TaskGroup() as group:
                    group.create_task(self._keepalive())
                    self._hello()
                    await self._read(reader)
            except* (OSError, EOFError, ssl.SSLError) as group:
                logger.info("terminal %s: connection lost: %s", self.phone, group.exceptions[0])
            finally:
                self.online.clear()
                self._writer = None
                writer.close()
                with contextlib.suppress(Exception):
                    await writer.wait_closed()
            await asyncio.sleep(delay)

    def _hello(self) -> None:
        if self.auth_code:
            self._auth_serial = self.send(Authentication(self.auth_code, "860000000000001", "1.0"))
        else:
            self._registration_serial = self.send(
                Registration(44, 300, "BWSIM", "BW-CELL-1", self.terminal_id, 0, "", form="2013")
            )

    async def _keepalive(self) -> None:
        while True:
            await asyncio.sleep(min(1.0, self.resend_after_s / 2))
            now = time.monotonic()
            if self.online.is_set():
                for kept in self.unanswered.values():
                    if now - kept.sent_at >= self.resend_after_s:
                        kept.sent_at = now
                        self.write_raw(kept.frame)
                if now - self._last_sent >= self.heartbeat_s:
                    self.send(Heartbeat())
            writer = self._writer
            if writer is not None:
                await writer.drain()

    async def _read(self, reader: asyncio.StreamReader) -> None:
        splitter = FrameSplitter()
        while True:
            chunk = await reader.read(4096)
            if not chunk:
                raise EOFError("the platform closed the connection")
            for raw in splitter.feed(chunk):
                try:
                    message = decode(raw)
                except FrameError as err:
                    logger.warning("terminal %s: bad frame from the platform: %s", self.phone, err)
                    continue
                self._handle(message.header, message.body)

    def _handle(self, header: Header, body: Body) -> None:
        if isinstance(body, RegistrationResponse):
            if body.reply_serial != self._registration_serial:
                logger.info(
                    "terminal %s: registration answer for serial %d: not ours",
                    self.phone,
                    body.reply_serial,
                )
                return
            self._registration_serial = -1  # answered: a repeat of it is not taken again
            if body.result == 0:
                self.auth_code = body.auth_code
                self._hello()
            else:
                self.refusals.append(body.result)
            return
        if isinstance(body, PlatformResponse):
            if body.reply_id == MSG_AUTHENTICATION and body.reply_serial == self._auth_serial:
                self._auth_serial = -1  # answered: a repeat of it is not taken again
                if body.result == 0:
                    self._online()
                else:
                    self.refusals.append(body.result)
                    self.auth_code = ""  # register again
                return
            kept = self.unanswered.get(body.reply_serial)
            if kept is None or kept.msg_id != body.reply_id:
                logger.debug(
                    "terminal %s: answer to 0x%04X serial %d: no report of ours",
                    self.phone,
                    body.reply_id,
                    body.reply_serial,
                )
                return
            if body.result == 0:
                del self.unanswered[body.reply_serial]
                self.answered += 1
            return
        if self.on_message is not None:
            self.on_message(header, body)

    def _online(self) -> None:
        self.online.set()
        now = time.monotonic()
        for kept in self.unanswered.values():  # everything not answered yet, in order
            kept.sent_at = now
            self.write_raw(kept.frame)

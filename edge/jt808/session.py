"""One device connection: authentication, limits, reports into the store, commands down.

A connection must register (0x0100 → 0x8100 with its authentication code) or
authenticate (0x0102) as a terminal of the registry before anything else is taken;
an unknown terminal, a wrong terminal id or a wrong code closes it. Every message that
needs one gets the platform's general response (0x8001) — a report only after the
store's commit that holds it. Limits: frames per second (token bucket), frame size
(the splitter), bad frames in a row, the authentication deadline, the idle timeout (no
whole frame: a half-open connection or a slow-loris sender), a device that does not
read its answers. Each refusal and close is counted by reason (`Metrics`).

Commands down (0x8900) are numbered and matched as the serial driver does
(`devices.elock.exchange`): each connection's serials start at a random value, and only
an answer naming the command's serial **and** its command code (0x0900) or message id
(0x0001) is taken. A 0x0001 refusing the command frame ends the command.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from contract.cellular_registry import CellularDevice, phone_key
from devices.elock import profile
from devices.elock.block import BondWatchBlock
from devices.elock.bodies import (
    MSG_HEARTBEAT,
    MSG_TRANSPARENT_DOWN,
    Authentication,
    BatchLocation,
    Body,
    Location,
    PlatformResponse,
    Registration,
    RegistrationResponse,
    TerminalResponse,
    Transparent,
)
from devices.elock.codec import encode
from devices.elock.driver import Answer
from devices.elock.exchange import (
    SerialCounter,
    is_response_to,
    is_result_of,
)
from devices.elock.header import Header
from devices.errors import FrameError
from edge.jt808.auth import auth_code, check_auth_code
from edge.jt808.config import Limits
from edge.jt808.frames import BadFrame, Frame, FrameReader
from edge.jt808.metrics import Metrics
from edge.jt808.reports import report_item
from edge.jt808.store import Item, Stored
from edge.outbox import OutboxError

log = logging.getLogger(__name__)

#: 0x8001 results (JT/T 808-2019 §8.2).
OK, FAILED, BAD_MESSAGE, UNSUPPORTED = 0, 1, 2, 3
#: 0x8100 result: the terminal is not in the database.
NO_SUCH_TERMINAL = 4
MSG_LOGOUT = 0x0003
#: Unsent answer bytes above which a session waits for the device to read them.
WRITE_BUFFER_HIGH = 16 * 1024


class Closed(Exception):
    """The connection is to be closed; `reason` is its metrics label."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(detail or reason)
        self.reason = reason


class Hub(Protocol):
    """What a session needs from its gateway."""

    metrics: Metrics
    limits: Limits
    secret: bytes
    devices: dict[str, CellularDevice]

    async def store(self, node_id: str, items: Sequence[Item]) -> Stored: ...

    def attach(self, session: DeviceSession) -> None: ...

    def detach(self, session: DeviceSession, reason: str) -> None: ...


@dataclass(frozen=True)
class _Pending:
    """A command waiting for its answer: the serial and code it was sent with."""

    serial: int
    command: int
    future: asyncio.Future[Answer]


class TokenBucket:
    """`rate` tokens per second up to `burst`."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, float(burst)
        self.tokens = float(burst)
        self.at = time.monotonic()

    def take(self, now: float) -> bool:
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


class DeviceSession:
    """Serves one TCP (or TLS) connection until it closes."""

    def __init__(
        self,
        hub: Hub,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        command_timeout_s: float = 5.0,
        command_retries: int = 2,
    ) -> None:
        self.hub = hub
        self.reader = reader
        self.writer = writer
        peer = writer.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        limits = hub.limits
        self.frames = FrameReader(limits.max_frame_bytes)
        self.bucket = TokenBucket(limits.frames_per_s, limits.frame_burst)
        self.device: CellularDevice | None = None
        self.phone = ""  # as the device's headers carry it (for answers)
        self.version: int | None = None
        self.authenticated = False
        self.command_timeout_s = command_timeout_s
        self.command_retries = command_retries
        self._serials = SerialCounter()
        self._bad_in_row = 0
        self._unauthenticated = 0
        self._limited_in_row = 0
        self._pending: dict[int, _Pending] = {}
        self._command_lock = asyncio.Lock()
        self.close_reason = ""
        self.closed = False  # the connection has ended (its reason: `close_reason`)
        self.started = self.last_frame = time.monotonic()

    def __repr__(self) -> str:
        who = self.device.phone if self.device else "unauthenticated"
        return f"<device {who} from {self.peer}>"

    # -- running --------------------------------------------------------------------------

    def expired(self, now: float) -> str | None:
        """The reason to close this connection at `now` (monotonic), if its deadline
        passed: no authentication in time, or no whole frame for the idle timeout (a
        half-open connection, or a slow-loris sender that never completes a frame).
        The gateway's reaper checks every session, so that a read needs no timer."""
        limits = self.hub.limits
        if self.authenticated:
            if now - self.last_frame > limits.idle_timeout_s:
                return "idle"
        elif now - self.started > limits.auth_timeout_s:
            return "auth_timeout"
        return None

    def abort(self, reason: str) -> None:
        """Close the connection at once (the reaper, a replacing connection)."""
        if not self.close_reason:
            self.close_reason = reason
        self.writer.transport.abort()

    async def run(self) -> None:
        """Serve until the device leaves, breaks a limit, or the gateway stops."""
        reason = "eof"
        try:
            while True:
                chunk = await self.reader.read(4096)
                if not chunk:
                    break
                now = time.monotonic()
                for event in self.frames.frames(chunk, now, lambda: self.authenticated):
                    if isinstance(event, BadFrame):
                        await self._bad(event)
                        continue
                    if not self.bucket.take(now):
                        self._rate_limited()
                        continue
                    self._limited_in_row = 0
                    self._bad_in_row = 0
                    self.last_frame = now
                    await self._frame(event)
        except Closed as closed:
            reason = closed.reason
            log.info("closing %r: %s", self, closed)
        except (ConnectionError, OSError) as err:
            reason = "connection_error"
            log.debug("%r: %s", self, err)
        finally:
            reason = self.close_reason or reason  # the reaper's reason first
            self.close_reason = reason
            self.closed = True  # a command still waiting for the lock's turn fails at once
            self.hub.metrics.closed[reason] += 1
            for pending in self._pending.values():  # its command fails with the reason
                if not pending.future.done():
                    gone = Closed(reason, f"the connection closed ({reason})")
                    pending.future.set_exception(gone)
            if self.authenticated:
                self.hub.detach(self, reason)
            self.writer.close()

    def _rate_limited(self) -> None:
        self.hub.metrics.refused["rate_limited"] += 1
        self._limited_in_row += 1
        if self._limited_in_row > self.hub.limits.frame_burst:
            raise Closed(
                "flooding", f"more than {self.hub.limits.frame_burst} frames over the rate"
            )

    async def _bad(self, bad: BadFrame) -> None:
        metrics = self.hub.metrics
        metrics.bad_frames[bad.reason] += 1
        self._bad_in_row += 1
        log.debug("%r: bad frame (%s): %s", self, bad.reason, bad.detail)
        if bad.header is not None and self.authenticated:
            # Answered "bad message": the device sends it again (JT/T 808 §8.2).
            result = UNSUPPORTED if bad.reason == "encrypted" else BAD_MESSAGE
            await self._answer(bad.header, result)
        if self._bad_in_row >= self.hub.limits.bad_frames_max or (
            not self.authenticated and bad.reason in ("garbage", "oversize")
        ):
            raise Closed("garbage", f"{self._bad_in_row} bad frames in a row, last {bad.reason}")

    # -- writing --------------------------------------------------------------------------

    async def send(self, body: Body, serial: int | None = None) -> None:
        header = Header(
            msg_id=body.MSG_ID,
            phone=self.phone,
            serial=self._serials.next() if serial is None else serial,
            version=self.version,
        )
        self.writer.write(encode(header, body))
        if self.writer.transport.get_write_buffer_size() < WRITE_BUFFER_HIGH:
            return  # the usual case: no wait, no timer
        try:
            async with asyncio.timeout(self.hub.limits.write_timeout_s):
                await self.writer.drain()
        except TimeoutError:
            raise Closed("not_reading", "the device does not read its answers") from None

    async def _answer(self, header: Header, result: int) -> None:
        await self.send(PlatformResponse(header.serial, header.msg_id, result))

    async def _answer_all(self, headers: Sequence[Header], result: int) -> None:
        for header in headers:
            await self._answer(header, result)

    # -- reading --------------------------------------------------------------------------

    async def _frame(self, frame: Frame) -> None:
        header, body = frame.header, frame.body
        self.hub.metrics.frames[f"0x{header.msg_id:04X}"] += 1
        if not frame.fragments:
            return  # a fragment: answered with its whole message
        if not self.phone:
            self.phone, self.version = header.phone, header.version
        if isinstance(body, Registration):
            await self._register(header, body)
            return
        if isinstance(body, Authentication):
            await self._authenticate(header, body)
            return
        if not self.authenticated:
            await self._unauthenticated_message(frame)
            return
        if phone_key(header.phone) != phone_key(self.phone):
            self.hub.metrics.refused["phone_mismatch"] += 1
            await self._answer_all(frame.fragments, FAILED)
            return
        if isinstance(body, Location):
            await self._reports(frame, [body], replayed=False)
        elif isinstance(body, BatchLocation):
            await self._reports(frame, list(body.items), replayed=body.kind == 1)
        elif isinstance(body, Transparent):
            self._command_answer(body)
            await self._answer_all(frame.fragments, OK)
        elif isinstance(body, TerminalResponse):
            self._command_received(body)  # its result comes as 0x0900, or a refusal
        elif isinstance(body, PlatformResponse | RegistrationResponse):
            return  # platform messages from a terminal: nothing to answer
        elif header.msg_id == MSG_HEARTBEAT:
            await self._answer(header, OK)
        elif header.msg_id == MSG_LOGOUT:
            await self._answer(header, OK)
            raise Closed("logout", "the terminal logged out")
        else:
            self.hub.metrics.refused["unsupported"] += 1
            await self._answer_all(frame.fragments, UNSUPPORTED)

    async def _register(self, header: Header, body: Registration) -> None:
        device = self.hub.devices.get(phone_key(header.phone))
        if device is None or (
            device.terminal_id is not None and body.terminal_id != device.terminal_id
        ):
            reason = "unknown_terminal" if device is None else "wrong_terminal_id"
            self.hub.metrics.refused[reason] += 1
            await self.send(RegistrationResponse(header.serial, NO_SUCH_TERMINAL))
            raise Closed(reason, f"registration of {header.phone} ({body.terminal_id}) refused")
        code = auth_code(self.hub.secret, device.phone)
        await self.send(RegistrationResponse(header.serial, OK, code))

    async def _authenticate(self, header: Header, body: Authentication) -> None:
        device = self.hub.devices.get(phone_key(header.phone))
        if device is None:
            self.hub.metrics.refused["unknown_terminal"] += 1
            await self._answer(header, FAILED)
            raise Closed("unknown_terminal", f"authentication of unknown {header.phone}")
        if not check_auth_code(self.hub.secret, device.phone, body.auth_code):
            self.hub.metrics.refused["bad_auth_code"] += 1
            await self._answer(header, FAILED)
            raise Closed("bad_auth_code", f"wrong authentication code from {header.phone}")
        if not self.authenticated:
            self.device, self.phone, self.version = device, header.phone, header.version
            self.authenticated = True
            self.hub.attach(self)
        await self._answer(header, OK)

    async def _unauthenticated_message(self, frame: Frame) -> None:
        self.hub.metrics.refused["unauthenticated"] += 1
        self._unauthenticated += 1
        await self._answer_all(frame.fragments, FAILED)
        if self._unauthenticated >= self.hub.limits.unauthenticated_max:
            raise Closed("unauthenticated", "messages before authentication")

    async def _reports(self, frame: Frame, locations: list[Location], replayed: bool) -> None:
        device = self.device
        assert device is not None
        received = datetime.now(UTC)
        items: list[Item] = []
        for location in locations:
            made = report_item(device, location, received, replayed=replayed)
            if made.ignored:
                self.hub.metrics.refused["lock_part_ignored"] += 1
                log.warning("%r: lock part of a report left out: %s", self, made.ignored)
            items.append(made.item)
        metrics = self.hub.metrics
        try:
            stored = await self.hub.store(device.node, items)
        except OutboxError as err:
            metrics.reports_refused += len(items)
            log.warning("%r: %d reports not stored (answered failed): %s", self, len(items), err)
            await self._answer_all(frame.fragments, FAILED)
            return
        metrics.reports_stored += len(items) - stored.duplicates
        metrics.reports_duplicate += stored.duplicates
        await self._answer_all(frame.fragments, OK)

    # -- commands ---------------------------------------------------------------------------

    def _command_answer(self, body: Transparent) -> None:
        """A command result (0x0900): taken only by the command of its serial and code."""
        try:
            block = body.bondwatch
        except FrameError as err:
            log.warning("%r: bad BondWatch block in transparent data: %s", self, err)
            return
        if block is None or (answered := block.command_result) is None:
            return
        pending = self._pending.get(answered.reply_serial)
        if pending is None:  # late: after its command gave up, or a repeat's answer again
            self.hub.metrics.refused["stale_answer"] += 1
            log.debug("%r: result for serial %d: no command waits", self, answered.reply_serial)
            return
        if not is_result_of(block, pending.serial, pending.command):
            self.hub.metrics.refused["stale_answer"] += 1
            log.warning(
                "%r: the result for serial %d is that of %s, not of the %s sent with it: "
                "ignored (a stale answer)",
                self,
                answered.reply_serial,
                answered.command_name,
                profile.COMMAND_BY_CODE.get(pending.command, f"0x{pending.command:02X}"),
            )
            return
        if not pending.future.done():
            pending.future.set_result(block)

    def _command_received(self, response: TerminalResponse) -> None:
        """A terminal general response (0x0001): a refusal of a waiting command's frame
        ends the command (no result will come); `ok` only says the frame arrived."""
        pending = self._pending.get(response.reply_serial)
        if pending is None or not is_response_to(response, pending.serial, MSG_TRANSPARENT_DOWN):
            log.debug(
                "%r: 0x0001 for 0x%04X serial %d answers no command waiting",
                self,
                response.reply_id,
                response.reply_serial,
            )
            return
        if response.result != OK and not pending.future.done():
            pending.future.set_result(response)

    async def command(self, block: BondWatchBlock) -> tuple[Answer | None, int]:
        """Send a lock command (0x8900); what ended it — the lock's result block, or its
        general response (0x0001) refusing the frame — (None: no answer after every
        attempt) and the attempts made; `Closed` when the connection closes (dropped,
        or taken over by a new one) while the command waits. A retry keeps the serial
        number, so a lock that acted but whose answer was lost answers again without
        acting twice."""
        if block.command is None:
            raise ValueError("a lock command block needs its command code")
        async with self._command_lock:
            if self.closed:
                reason = self.close_reason or "closed"
                raise Closed(reason, f"the connection closed ({reason})")
            body = Transparent(profile.TRANSPARENT_TYPE, block.encode(), downlink=True)
            serial = self._serials.next()
            future: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
            self._pending[serial] = _Pending(serial, block.command, future)
            attempts = 0
            try:
                for attempts in range(1, self.command_retries + 2):
                    await self.send(body, serial)
                    try:
                        async with asyncio.timeout(self.command_timeout_s):
                            return await asyncio.shield(future), attempts
                    except TimeoutError:
                        continue
            finally:
                self._pending.pop(serial, None)
                if future.done() and not future.cancelled():
                    future.exception()  # seen here, whether or not it was awaited
                future.cancel()
            return None, attempts

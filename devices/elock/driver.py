"""The e-lock driver: a JT/T 808 platform end on one serial port.

It answers the lock's registration, authentication, heartbeats and reports the way
a JT/T 808 platform does (0x8100, 0x8001), turns BondWatch lock blocks into
`LockEvent`s, and sends seal / unseal / query commands as transparent data 0x8900,
matching each answer to its command by serial number and command code
(`devices.elock.exchange`: serials start at a random value, and an answer that names
another command is not taken), with an acknowledgement timeout and retries (a retry
keeps the serial number, so a lock that did act but whose answer was lost answers again
without acting twice).

The port is opened by URL (`devices.serial_port.open_serial`) and reopened with
exponential backoff when it cannot be opened or is lost. Health is reported once per
change: `ok` (frames arrive), `degraded` (port open but the locks are silent, or
frames keep failing their checks), `down` (port lost).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from devices.elock import profile
from devices.elock.block import Area, BondWatchBlock, CommandResult
from devices.elock.bodies import (
    MSG_BATCH_LOCATION,
    MSG_LOCATION,
    MSG_REGISTRATION,
    MSG_TRANSPARENT_DOWN,
    BatchLocation,
    Body,
    Location,
    PlatformResponse,
    Registration,
    RegistrationResponse,
    TerminalResponse,
    Transparent,
)
from devices.elock.codec import Message, decode, encode
from devices.elock.exchange import (
    TERMINAL_RESULTS,
    SerialCounter,
    is_response_to,
    is_result_of,
)
from devices.elock.framing import FrameSplitter
from devices.elock.header import Header
from devices.errors import FrameError, TransportError
from devices.lifecycle import DeviceLink, HealthCallback, renamed_keys
from devices.serial_port import open_serial

logger = logging.getLogger(__name__)

#: Reports remembered by their frame, to know one the lock sends again, and how long after
#: it was last seen (a lock resends after its answer timeout, seconds; a signed report's
#: counter makes every new one differ anyway, an unsigned lock's may repeat after a restart).
RECENT_REPORTS: Final = 256
REPEAT_WINDOW_S: Final = 60.0
#: A dropped frame is logged at most this often (with a count of those not logged).
BAD_LOG_EVERY_S: Final = 10.0

LockId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,32}$")]
Phone = Annotated[str, Field(pattern=r"^[0-9]{1,20}$")]
CommandOutcome = Literal["done", "refused", "failed"]


class Jt808LockConfig(BaseModel):
    """An e-lock (or several on one bus) speaking JT/T 808 with the BondWatch profile."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["jt808"] = Field(description="driver discriminator: JT/T 808 e-lock")
    port: str = Field(
        description="serial URL: /dev/ttyUSB0, a stub's pty, socket://host:port, spy://…"
    )
    baudrate: int = Field(default=9600, gt=0, description="line speed, bit/s")
    lock_ids: list[LockId] = Field(
        min_length=1, description="ids of the locks expected on this port; others are ignored"
    )
    phones: dict[LockId, Phone] = Field(
        default_factory=dict,
        description="lock id → terminal phone number, for commands before the lock is heard",
    )
    ack_timeout_s: float = Field(
        default=2.0, gt=0, description="how long to wait for a lock's answer to one attempt"
    )
    retries: int = Field(
        default=3, ge=0, description="further attempts after the first when no answer comes"
    )
    reconnect_min_s: float = Field(
        default=0.5, gt=0, description="first wait before reopening a lost port"
    )
    reconnect_max_s: float = Field(
        default=30.0, gt=0, description="longest wait between reopening attempts (doubling)"
    )
    silence_s: float = Field(
        default=120.0, gt=0, description="no valid frame for this long → health degraded"
    )
    bad_frames_degraded: int = Field(
        default=5, ge=1, description="bad frames in a row after which health is degraded"
    )
    accept_bad_checksum: bool = Field(
        default=False,
        description="act on frames with a wrong check code (some devices send them); "
        "off for customs seals",
    )
    auth_code: str = Field(
        default="BONDWATCH",
        min_length=1,
        max_length=64,
        description="authentication code handed to a registering lock (0x8100)",
    )

    @model_validator(mode="before")
    @classmethod
    def _old_key_names(cls, data: object) -> object:
        return renamed_keys(data, {"reconnect_initial_s": "reconnect_min_s"}, "lock")


@dataclass(frozen=True)
class LockEvent:
    """What a lock reported: state, the CONTRACT event name, battery, time, position, and
    the lock's report counter and MAC (`devices.elock.report_mac`) when it signs reports."""

    lock_id: str
    state: profile.LockState
    event: profile.LockEventName
    battery_pct: int | None
    time: datetime
    lat: float | None
    lon: float | None
    raw_msg_id: int
    counter: int | None = None
    mac: bytes | None = None


@dataclass(frozen=True)
class CommandReply:
    """The outcome of a command: `done`, `refused` or `failed`, with the reason."""

    lock_id: str
    command: profile.CommandName
    result: CommandOutcome
    reason: str = ""
    state: profile.LockState = "unknown"
    battery_pct: int | None = None
    wrong_passwords: int | None = None
    serial: int | None = None
    attempts: int = 0


EventCallback = Callable[[LockEvent], Awaitable[None]]
#: What ends a command: the lock's result block (0x0900), or its general response
#: (0x0001) refusing the command frame.
Answer = BondWatchBlock | TerminalResponse


@dataclass(frozen=True)
class _Pending:
    """A command waiting for its answer: its serial and code, and the future the answer
    goes to."""

    serial: int
    command: int
    future: asyncio.Future[Answer]


class ElockDriver:
    """Run with `await driver.run(on_event, on_health)` until cancelled; command meanwhile.

    `first_serial`: the serial number of the first message sent; None (the default)
    draws it at random, so that a restarted driver does not reuse the serials of the
    commands it sent before (the lock caches its answers by serial)."""

    def __init__(self, config: Jt808LockConfig, first_serial: int | None = None) -> None:
        self.config = config
        self._writer: asyncio.StreamWriter | None = None
        self._write_lock = asyncio.Lock()
        self._connected = asyncio.Event()
        self._serials = SerialCounter(first_serial)
        self._pending: dict[tuple[str, int], _Pending] = {}
        self._phones: dict[str, str] = dict(config.phones)
        self._versions: dict[str, int | None] = {}
        self.link = DeviceLink(
            f"lock port {config.port}", logger, config.reconnect_min_s, config.reconnect_max_s
        )
        self._bad_in_row = 0
        self._last_good = time.monotonic()
        self._ignored_ids: set[str] = set()
        #: the newest reports' frames (and when they came), to know one the lock sent
        #: again (it missed the answer): answered again, its events not given twice
        self._recent: OrderedDict[bytes, float] = OrderedDict()
        self._bad_logged_at = -BAD_LOG_EVERY_S
        self._bad_unlogged = 0
        self.frames_ok = 0
        self.frames_bad = 0
        self.frames_repeated = 0

    # --- running -------------------------------------------------------------------------

    async def run(self, on_event: EventCallback, on_health: HealthCallback) -> None:
        """Keep the port open and the locks served until cancelled."""
        self.link.on_health = on_health
        while True:
            try:
                reader, writer = await open_serial(self.config.port, self.config.baudrate)
            except TransportError as err:
                await self.link.down(f"cannot open {self.config.port}: {err}")
                await self.link.backoff.wait()
                continue
            self.link.back()
            self._writer = writer
            self._connected.set()
            self._last_good = time.monotonic()
            try:
                await self._serve(reader, on_event)
            except (OSError, TransportError, EOFError) as err:
                await self.link.down(f"port {self.config.port} lost: {err}")
            finally:
                self._connected.clear()
                self._writer = None
                writer.close()
                with contextlib.suppress(Exception):
                    await writer.wait_closed()
            await self.link.backoff.wait()

    async def _serve(self, reader: asyncio.StreamReader, on_event: EventCallback) -> None:
        splitter = FrameSplitter()
        while True:
            try:
                # asyncio.timeout, not wait_for: see devices/gnss/driver.py.
                async with asyncio.timeout(self.config.silence_s):
                    chunk = await reader.read(4096)
            except TimeoutError:
                await self.link.set_health(
                    "degraded", f"no frame from the locks for {self.config.silence_s:.0f} s"
                )
                continue
            if not chunk:
                raise EOFError("end of stream")
            for raw in splitter.feed(chunk):
                await self._handle_raw(raw, on_event)
            quiet = time.monotonic() - self._last_good
            if quiet > self.config.silence_s:  # bytes, but no frame: line noise
                await self.link.set_health(
                    "degraded", f"no good frame from the locks for {quiet:.0f} s (bytes arriving)"
                )

    async def _handle_raw(self, raw: bytes, on_event: EventCallback) -> None:
        try:
            message = decode(raw, strict=not self.config.accept_bad_checksum)
        except FrameError as err:
            self.frames_bad += 1
            self._bad_in_row += 1
            self._log_bad(err, raw)
            if self._bad_in_row >= self.config.bad_frames_degraded:
                await self.link.set_health(
                    "degraded", f"{self._bad_in_row} bad frames in a row, last: {err}"
                )
            return
        self.frames_ok += 1
        self._bad_in_row = 0
        self._last_good = time.monotonic()
        await self.link.set_health("ok", "frames arriving")
        await self._answer(message)
        if self._seen_before(message, raw):
            return
        for event in self._events_of(message):
            if event.lock_id not in self.config.lock_ids:
                if event.lock_id not in self._ignored_ids:
                    self._ignored_ids.add(event.lock_id)
                    logger.warning(
                        "lock port %s: lock %s is not configured (expected %s); ignoring it",
                        self.config.port,
                        event.lock_id,
                        ", ".join(self.config.lock_ids),
                    )
                continue
            try:
                await on_event(event)
            except Exception:
                logger.exception(
                    "lock %s on %s: event handler failed for %s",
                    event.lock_id,
                    self.config.port,
                    event.event,
                )

    def _seen_before(self, message: Message, raw: bytes) -> bool:
        """A report whose very frame (same serial, same content) came among the newest
        `RECENT_REPORTS`, the last time at most `REPEAT_WINDOW_S` before: the lock sent it
        again because it missed the answer. It is answered again (above) and its events
        are not given twice — given twice, a signed report's second copy would look
        replayed to the server (`LOCK_REPORT_FORGED`). The same bytes after a longer
        quiet are a new report (a lock without clock or counter that started its serials
        again)."""
        if message.msg_id not in (MSG_LOCATION, MSG_BATCH_LOCATION):
            return False
        now = time.monotonic()
        last = self._recent.pop(raw, None)
        self._recent[raw] = now
        if len(self._recent) > RECENT_REPORTS:
            self._recent.popitem(last=False)
        if last is not None and now - last <= REPEAT_WINDOW_S:
            self.frames_repeated += 1
            return True
        return False

    def _log_bad(self, err: FrameError, raw: bytes) -> None:
        """A dropped frame, logged at most once every `BAD_LOG_EVERY_S` with how many were
        dropped meanwhile (a noisy line would fill the log)."""
        now = time.monotonic()
        if now - self._bad_logged_at < BAD_LOG_EVERY_S:
            self._bad_unlogged += 1
            return
        more = f" ({self._bad_unlogged} more since the last)" if self._bad_unlogged else ""
        logger.warning(
            "lock port %s: dropped frame (%s): %s%s", self.config.port, err, raw[:64].hex(), more
        )
        self._bad_logged_at, self._bad_unlogged = now, 0

    # --- answering the lock --------------------------------------------------------------

    async def _answer(self, message: Message) -> None:
        header = message.header
        self._versions[header.phone] = header.version
        body = message.body
        reply: Body
        if isinstance(body, Registration) or header.msg_id == MSG_REGISTRATION:
            reply = RegistrationResponse(header.serial, 0, self.config.auth_code)
        elif isinstance(body, TerminalResponse):
            self._received(header.phone, body)
            return
        elif isinstance(body, PlatformResponse | RegistrationResponse):
            return
        else:
            reply = PlatformResponse(header.serial, header.msg_id, 0)
        await self._send(header.phone, reply, header.version)
        if isinstance(body, Transparent):
            block = _block_of(body)
            if block is not None and block.command_result is not None:
                self._resolve(header.phone, block)

    def _received(self, phone: str, response: TerminalResponse) -> None:
        """A general response (0x0001): the lock got a frame; a refusal of a waiting
        command's frame ends the command (no result will come)."""
        pending = self._pending.get((_phone_key(phone), response.reply_serial))
        result = TERMINAL_RESULTS.get(response.result, f"result {response.result}")
        if pending is None or not is_response_to(response, pending.serial, MSG_TRANSPARENT_DOWN):
            logger.debug(
                "lock %s answered 0x%04X serial %d (%s): no command of ours",
                phone,
                response.reply_id,
                response.reply_serial,
                result,
            )
            return
        logger.debug("lock %s received serial %d: %s", phone, response.reply_serial, result)
        if response.result != 0 and not pending.future.done():
            pending.future.set_result(response)

    def _resolve(self, phone: str, block: BondWatchBlock) -> None:
        """A command result (0x0900): taken only by the command of its serial and code."""
        answered = block.command_result
        assert answered is not None
        pending = self._pending.get((_phone_key(phone), answered.reply_serial))
        if pending is None:
            logger.debug(
                "lock %s: result for serial %d, no command waits for it",
                phone,
                answered.reply_serial,
            )
            return
        if not is_result_of(block, pending.serial, pending.command):
            logger.warning(
                "lock %s: the result for serial %d is that of %s, not of the %s sent with it: "
                "ignored (a stale answer)",
                phone,
                answered.reply_serial,
                answered.command_name,
                profile.COMMAND_BY_CODE.get(pending.command, pending.command),
            )
            return
        if not pending.future.done():
            pending.future.set_result(block)

    def _events_of(self, message: Message) -> list[LockEvent]:
        body = message.body
        locations: tuple[Location, ...]
        if isinstance(body, Location):
            locations = (body,)
        elif isinstance(body, BatchLocation):
            locations = body.items
        else:
            return []
        events = []
        for location in locations:
            try:
                block = location.bondwatch
            except FrameError as err:
                logger.warning("lock %s: bad BondWatch block: %s", message.header.phone, err)
                continue
            if block is None or block.lock_id is None:
                events.extend(vendor_lock_events(location, message.msg_id))
                continue
            self._phones[block.lock_id] = message.header.phone
            event = block.event_name or "status"
            place = location.place  # not under the lock's MAC: an impossible one left out
            events.append(
                LockEvent(
                    lock_id=block.lock_id,
                    state=block.state_name,
                    event=event,
                    battery_pct=percent(block.battery_pct),
                    time=location.time or datetime.now(UTC),
                    lat=place[0] if place else None,
                    lon=place[1] if place else None,
                    raw_msg_id=message.msg_id,
                    counter=block.report_counter,
                    mac=block.report_mac,
                )
            )
        return events

    async def _send(self, phone: str, body: Body, version: int | None, serial: int = -1) -> None:
        writer = self._writer
        if writer is None:
            raise TransportError(f"lock port {self.config.port} is not open")
        if serial < 0:
            serial = self._serials.next()
        frame = encode(
            Header(msg_id=body.MSG_ID, phone=phone, serial=serial, version=version), body
        )
        async with self._write_lock:
            writer.write(frame)
            await writer.drain()

    # --- commands ------------------------------------------------------------------------

    async def unseal(self, lock_id: str, trip_id: str, token: bytes) -> CommandReply:
        """Unseal `lock_id` for `trip_id` with an `unseal` token from
        `devices.elock.authorisation` (single-use: the lock refuses it a second time)."""
        return await self._command(lock_id, "unseal", trip_id=trip_id, token=token)

    async def seal(self, lock_id: str, trip_id: str, token: bytes) -> CommandReply:
        """Seal `lock_id` for `trip_id` with a `seal` token: without one a gateway could
        seal again after an opening and hide it."""
        return await self._command(lock_id, "seal", trip_id=trip_id, token=token)

    async def query(self, lock_id: str) -> CommandReply:
        """Ask `lock_id` for its state and battery."""
        return await self._command(lock_id, "query")

    async def set_area(
        self, lock_id: str, lat: float, lon: float, radius_m: int, token: bytes
    ) -> CommandReply:
        """Tell `lock_id` the circle it may be unsealed in (a `set_area` token for the sealed
        trip and this very area)."""
        return await self._command(lock_id, "set_area", token=token, area=Area(lat, lon, radius_m))

    async def _command(
        self,
        lock_id: str,
        command: profile.CommandName,
        trip_id: str | None = None,
        token: bytes | None = None,
        area: Area | None = None,
    ) -> CommandReply:
        phone = self._phones.get(lock_id)
        if lock_id not in self.config.lock_ids:
            return CommandReply(lock_id, command, "failed", f"lock {lock_id} is not configured")
        if phone is None:
            return CommandReply(lock_id, command, "failed", "lock not heard yet: phone unknown")
        block = BondWatchBlock(
            lock_id=lock_id,
            command=profile.COMMAND_CODES[command],
            trip_id=trip_id,
            token=token,
            area=area,
        )
        body = Transparent(profile.TRANSPARENT_TYPE, block.encode(), downlink=True)
        serial = self._serials.next()
        key = (_phone_key(phone), serial)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Answer] = loop.create_future()
        self._pending[key] = _Pending(serial, profile.COMMAND_CODES[command], future)
        attempts = 0
        try:
            for attempts in range(1, self.config.retries + 2):
                try:
                    async with asyncio.timeout(self.config.ack_timeout_s):
                        await self._connected.wait()
                    await self._send(phone, body, self._versions.get(phone), serial)
                except (TimeoutError, TransportError, OSError) as err:
                    logger.warning(
                        "lock %s: %s attempt %d not sent: %s", lock_id, command, attempts, err
                    )
                    continue
                try:
                    async with asyncio.timeout(self.config.ack_timeout_s):
                        answer = await asyncio.shield(future)
                except TimeoutError:
                    logger.info(
                        "lock %s: no answer to %s (serial %d, attempt %d of %d)",
                        lock_id,
                        command,
                        serial,
                        attempts,
                        self.config.retries + 1,
                    )
                    continue
                return _reply_of(lock_id, command, answer, serial, attempts)
        finally:
            self._pending.pop(key, None)
            future.cancel()
        return CommandReply(
            lock_id,
            command,
            "failed",
            f"no answer after {attempts} attempts of {self.config.ack_timeout_s:g} s",
            serial=serial,
            attempts=attempts,
        )


def _phone_key(phone: str) -> str:
    """A phone number as answers are matched: without the BCD zero padding.

    A configured `13800000001` and the decoded header's `013800000001` (2013) or
    `00000000013800000001` (2019) are the same terminal.
    """
    return phone.lstrip("0") or "0"


def _block_of(body: Transparent) -> BondWatchBlock | None:
    try:
        return body.bondwatch
    except FrameError as err:
        logger.warning("bad BondWatch block in transparent data: %s", err)
        return None


def _reply_of(
    lock_id: str, command: profile.CommandName, answer: Answer, serial: int, attempts: int
) -> CommandReply:
    if isinstance(answer, TerminalResponse):
        name = TERMINAL_RESULTS.get(answer.result, f"result {answer.result}")
        return CommandReply(
            lock_id,
            command,
            "failed",
            f"the lock rejected the command frame: {name} (0x0001)",
            serial=serial,
            attempts=attempts,
        )
    block = answer
    result: CommandResult | None = block.command_result
    assert result is not None
    outcome: CommandOutcome = profile.RESULT_BY_CODE.get(result.result, "failed")
    return CommandReply(
        lock_id=lock_id,
        command=command,
        result=outcome,
        reason=result.reason_name,
        state=block.state_name,
        battery_pct=block.battery_pct,
        wrong_passwords=block.wrong_passwords,
        serial=serial,
        attempts=attempts,
    )


def percent(value: int | None) -> int | None:
    """A battery level a lock reported, if it is one (0–100 %): a byte of 0xFF is not."""
    return value if value is not None and 0 <= value <= 100 else None


def vendor_lock_events(location: Location, msg_id: int) -> list[LockEvent]:
    """State of third-party locks from the common e-lock items (0x63, 0xD5), as `status`;
    the report's place only when it is a fix (never 0, 0 for "no position")."""
    events = []
    moment = location.time or datetime.now(UTC)
    lat, lon = location.place or (None, None)
    for item in location.extras:
        if item.name == "lock_list":
            for lock in item.value:
                state: profile.LockState = "sealed" if lock["sealed"] else "unsealed"
                events.append(
                    LockEvent(
                        lock["lock_id"],
                        state,
                        "status",
                        None,
                        moment,
                        lat,
                        lon,
                        msg_id,
                    )
                )
        elif item.name == "lock_info" and isinstance(item.value, list):
            for lock in item.value:
                state = "sealed" if lock["locked"] else "open"
                events.append(
                    LockEvent(
                        lock["lock_id"],
                        state,
                        "status",
                        percent(lock["battery_pct"]),
                        moment,
                        lat,
                        lon,
                        msg_id,
                    )
                )
    return events

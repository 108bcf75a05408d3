"""The e-lock driver: a JT/T 808 platform end on one serial port.

It answers the lock's registration, authentication, heartbeats and reports the way
a JT/T 808 platform does (0x8100, 0x8001), turns BondWatch lock blocks into
`LockEvent`s, and sends seal / unseal / query commands as transparent data 0x8900,
matching each answer to its command by serial number, with an acknowledgement
timeout and retries (a retry keeps the serial number, so a lock that did act but
whose answer was lost answers again without acting twice).

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
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from devices.elock import profile
from devices.elock.block import Area, BondWatchBlock, CommandResult
from devices.elock.bodies import (
    MSG_REGISTRATION,
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
from devices.elock.framing import FrameSplitter
from devices.elock.header import Header
from devices.errors import FrameError, TransportError
from devices.serial_port import open_serial

logger = logging.getLogger(__name__)

HealthStatus = Literal["ok", "degraded", "down"]
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
    reconnect_initial_s: float = Field(
        default=0.5, gt=0, description="first wait before reopening a lost port"
    )
    reconnect_max_s: float = Field(
        default=30.0, gt=0, description="longest wait between reopening attempts"
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


@dataclass(frozen=True)
class LockEvent:
    """What a lock reported: state, the CONTRACT event name, battery, time, position."""

    lock_id: str
    state: profile.LockState
    event: profile.LockEventName
    battery_pct: int | None
    time: datetime
    lat: float | None
    lon: float | None
    raw_msg_id: int


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
HealthCallback = Callable[[str, str], Awaitable[None]]


class ElockDriver:
    """Run with `await driver.run(on_event, on_health)` until cancelled; command meanwhile."""

    def __init__(self, config: Jt808LockConfig) -> None:
        self.config = config
        self._writer: asyncio.StreamWriter | None = None
        self._write_lock = asyncio.Lock()
        self._connected = asyncio.Event()
        self._serial = 0
        self._pending: dict[tuple[str, int], asyncio.Future[BondWatchBlock]] = {}
        self._phones: dict[str, str] = dict(config.phones)
        self._versions: dict[str, int | None] = {}
        self._health: tuple[HealthStatus, str] | None = None
        self._on_health: HealthCallback | None = None
        self._bad_in_row = 0
        self._last_good = time.monotonic()
        self._ignored_ids: set[str] = set()
        self.frames_ok = 0
        self.frames_bad = 0

    # --- running -------------------------------------------------------------------------

    async def run(self, on_event: EventCallback, on_health: HealthCallback) -> None:
        """Keep the port open and the locks served until cancelled."""
        self._on_health = on_health
        delay = self.config.reconnect_initial_s
        lost_logged = False
        while True:
            try:
                reader, writer = await open_serial(self.config.port, self.config.baudrate)
            except TransportError as err:
                if not lost_logged:
                    logger.warning("lock port %s cannot be opened: %s", self.config.port, err)
                    lost_logged = True
                await self._set_health("down", f"cannot open {self.config.port}: {err}")
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.config.reconnect_max_s)
                continue
            if lost_logged:
                logger.info("lock port %s is back", self.config.port)
                lost_logged = False
            delay = self.config.reconnect_initial_s
            self._writer = writer
            self._connected.set()
            self._last_good = time.monotonic()
            try:
                await self._serve(reader, on_event)
            except (OSError, TransportError, EOFError) as err:
                logger.warning("lock port %s lost: %s", self.config.port, err)
                lost_logged = True
                await self._set_health("down", f"port {self.config.port} lost: {err}")
            finally:
                self._connected.clear()
                self._writer = None
                writer.close()
                with contextlib.suppress(Exception):
                    await writer.wait_closed()
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.config.reconnect_max_s)

    async def _serve(self, reader: asyncio.StreamReader, on_event: EventCallback) -> None:
        splitter = FrameSplitter()
        while True:
            try:
                # asyncio.timeout, not wait_for: see devices/gnss/driver.py.
                async with asyncio.timeout(self.config.silence_s):
                    chunk = await reader.read(4096)
            except TimeoutError:
                await self._set_health(
                    "degraded", f"no frame from the locks for {self.config.silence_s:.0f} s"
                )
                continue
            if not chunk:
                raise EOFError("end of stream")
            for raw in splitter.feed(chunk):
                await self._handle_raw(raw, on_event)

    async def _handle_raw(self, raw: bytes, on_event: EventCallback) -> None:
        try:
            message = decode(raw, strict=not self.config.accept_bad_checksum)
        except FrameError as err:
            self.frames_bad += 1
            self._bad_in_row += 1
            logger.warning(
                "lock port %s: dropped frame (%s): %s", self.config.port, err, raw[:64].hex()
            )
            if self._bad_in_row >= self.config.bad_frames_degraded:
                await self._set_health(
                    "degraded", f"{self._bad_in_row} bad frames in a row, last: {err}"
                )
            return
        self.frames_ok += 1
        self._bad_in_row = 0
        self._last_good = time.monotonic()
        await self._set_health("ok", "frames arriving")
        await self._answer(message)
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

    async def _set_health(self, status: HealthStatus, detail: str) -> None:
        if self._health is not None and self._health[0] == status:
            return
        self._health = (status, detail)
        if self._on_health is not None:
            await self._on_health(status, detail)

    # --- answering the lock --------------------------------------------------------------

    async def _answer(self, message: Message) -> None:
        header = message.header
        self._versions[header.phone] = header.version
        body = message.body
        reply: Body
        if isinstance(body, Registration) or header.msg_id == MSG_REGISTRATION:
            reply = RegistrationResponse(header.serial, 0, self.config.auth_code)
        elif isinstance(body, TerminalResponse):
            logger.debug("lock %s answered 0x%04X: %s", header.phone, body.reply_id, body.result)
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

    def _resolve(self, phone: str, block: BondWatchBlock) -> None:
        assert block.command_result is not None
        future = self._pending.get((_phone_key(phone), block.command_result.reply_serial))
        if future is not None and not future.done():
            future.set_result(block)

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
                events.extend(_vendor_lock_events(location, message.msg_id))
                continue
            self._phones[block.lock_id] = message.header.phone
            event = block.event_name or "status"
            events.append(
                LockEvent(
                    lock_id=block.lock_id,
                    state=block.state_name,
                    event=event,
                    battery_pct=block.battery_pct,
                    time=location.time or datetime.now(UTC),
                    lat=location.lat if location.status & 0x2 else None,
                    lon=location.lon if location.status & 0x2 else None,
                    raw_msg_id=message.msg_id,
                )
            )
        return events

    async def _send(self, phone: str, body: Body, version: int | None, serial: int = -1) -> None:
        writer = self._writer
        if writer is None:
            raise TransportError(f"lock port {self.config.port} is not open")
        if serial < 0:
            serial = self._next_serial()
        frame = encode(
            Header(msg_id=body.MSG_ID, phone=phone, serial=serial, version=version), body
        )
        async with self._write_lock:
            writer.write(frame)
            await writer.drain()

    def _next_serial(self) -> int:
        serial = self._serial
        self._serial = (self._serial + 1) & 0xFFFF
        return serial

    # --- commands ------------------------------------------------------------------------

    async def unseal(self, lock_id: str, trip_id: str, token: bytes) -> CommandReply:
        """Unseal `lock_id` for `trip_id` with a token from `devices.elock.authorisation`."""
        return await self._command(lock_id, "unseal", trip_id=trip_id, token=token)

    async def seal(self, lock_id: str, trip_id: str, token: bytes | None = None) -> CommandReply:
        """Seal `lock_id` for `trip_id` (the token is optional: sealing needs no secret)."""
        return await self._command(lock_id, "seal", trip_id=trip_id, token=token)

    async def query(self, lock_id: str) -> CommandReply:
        """Ask `lock_id` for its state and battery."""
        return await self._command(lock_id, "query")

    async def set_area(
        self, lock_id: str, lat: float, lon: float, radius_m: int, token: bytes
    ) -> CommandReply:
        """Tell `lock_id` the circle it may be unsealed in (needs a valid token for the trip)."""
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
        serial = self._next_serial()
        key = (_phone_key(phone), serial)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[BondWatchBlock] = loop.create_future()
        self._pending[key] = future
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
    lock_id: str, command: profile.CommandName, block: BondWatchBlock, serial: int, attempts: int
) -> CommandReply:
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


def _vendor_lock_events(location: Location, msg_id: int) -> list[LockEvent]:
    """State of third-party locks from the common e-lock items (0x63, 0xD5), as `status`."""
    events = []
    moment = location.time or datetime.now(UTC)
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
                        location.lat,
                        location.lon,
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
                        lock["battery_pct"],
                        moment,
                        location.lat,
                        location.lon,
                        msg_id,
                    )
                )
    return events

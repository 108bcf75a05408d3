"""Async driver of a barrier and loop detector behind a Modbus RTU relay/IO module.

Modbus RTU framing and the serial transport are pymodbus's (`AsyncModbusSerialClient`).
Its serial transport opens the port with `serial.serial_for_url`, so `port` may be a
device path (`/dev/ttyUSB0`), a firmware stub's pty, or a pyserial URL whose port has a
file descriptor (`spy:///dev/ttyUSB0`, `socket://host:port` to an RS-485 gateway in
transparent mode). `loop://` has no file descriptor and cannot be used.

Fail safe: every path out of `open_barrier` that does not end with the barrier fully
open commands it closed, including cancellation. The lane's traffic light (when wired)
is red from the first poll on, turns green only when asked (`want_lamp`) while the arm
is at its fully-open limit after an open command, turns red before any close command,
is written again after the module stops answering, and is set red when `run` ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pymodbus.client import AsyncModbusSerialClient
from pymodbus.exceptions import ConnectionException, ModbusException
from pymodbus.framer import FramerType
from pymodbus.pdu import ModbusPDU

from devices.barrier.codec import (
    BarrierAction,
    BarrierState,
    BarrierStatus,
    CommandMode,
    LampColour,
    classify_unanswered,
    command_plan,
    decode_status,
    lamp_colour,
    lamp_plan,
)
from devices.barrier.debounce import PresenceDebouncer
from devices.barrier.health import HealthTracker, PollOutcome
from devices.barrier.registers import BarrierRegisterMap
from devices.errors import DeviceError, TransportError
from devices.lifecycle import DeviceLink, HealthCallback, renamed_keys

logger = logging.getLogger(__name__)

#: Modbus function codes of the requests the driver makes (Modbus Application Protocol
#: Specification V1.1b3, section 6).
FC_READ_DISCRETE_INPUTS: Final = 0x02
FC_READ_INPUT_REGISTERS: Final = 0x04
FC_WRITE_COIL: Final = 0x05

PresenceCallback = Callable[[bool], Awaitable[None]]
LampListener = Callable[[LampColour], None]
#: The longest wait for setting the light red when `run` ends.
LAMP_ON_EXIT_S = 1.0


class ModbusBarrierConfig(BaseModel):
    """A barrier and loop detector wired to a Modbus RTU relay/IO module on RS-485."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["modbus_rtu"] = Field(description="driver selector: Modbus RTU relay module")
    port: str = Field(
        min_length=1,
        description="serial device path or pyserial URL with a file descriptor "
        "(/dev/ttyUSB0, a stub's /dev/pts/N, spy:///dev/ttyUSB0, socket://host:port)",
    )
    baudrate: int = Field(default=9600, gt=0, description="bits per second, as set on the module")
    bytesize: Literal[7, 8] = Field(default=8, description="data bits (RTU uses 8)")
    parity: Literal["N", "E", "O"] = Field(
        default="N", description="parity: N none, E even (the spec's default), O odd"
    )
    stopbits: Literal[1, 2] = Field(default=1, description="stop bits")
    unit_id: int = Field(ge=1, le=247, description="Modbus unit (slave) id of the module")
    poll_interval_s: float = Field(
        default=0.2, gt=0, le=10, description="seconds between two polls of the inputs"
    )
    response_timeout_s: float = Field(
        default=0.5, gt=0, le=10, description="seconds to wait for one reply before a retry"
    )
    retries: int = Field(default=1, ge=0, le=5, description="resends of a request without reply")
    open_timeout_s: float = Field(
        default=6.0, gt=0, le=60, description="seconds for the fully-open limit after OPEN"
    )
    close_timeout_s: float = Field(
        default=8.0, gt=0, le=60, description="seconds for the fully-closed limit after CLOSE"
    )
    command_mode: CommandMode = Field(
        default="pulse",
        description="pulse: momentary OPEN/CLOSE relays; hold: OPEN relay held while open",
    )
    pulse_s: float = Field(
        default=0.5, gt=0, le=5, description="how long a pulse-mode relay stays closed"
    )
    presence_debounce_s: float = Field(
        default=0.3, ge=0, le=10, description="seconds a loop change must last to be reported"
    )
    down_after_failures: int = Field(
        default=3, ge=1, le=100, description="polls without reply in a row before health is down"
    )
    reconnect_max_s: float = Field(
        default=10.0,
        gt=0,
        le=300,
        description="longest wait between polls while down (doubling from poll_interval_s)",
    )
    registers: BarrierRegisterMap = Field(
        default_factory=BarrierRegisterMap, description="addresses of each signal on the module"
    )

    @model_validator(mode="before")
    @classmethod
    def _old_key_names(cls, data: object) -> object:
        return renamed_keys(data, {"backoff_max_s": "reconnect_max_s"}, "barrier")

    @model_validator(mode="after")
    def _pulse_needs_close_coil(self) -> Self:
        if self.command_mode == "pulse" and self.registers.close_coil is None:
            raise ValueError(
                "command_mode 'pulse' needs registers.close_coil: wire the CLOSE relay "
                "or use command_mode 'hold'"
            )
        return self


@dataclass(frozen=True, slots=True)
class BarrierResult:
    """The outcome of `open_barrier` or `close_barrier`."""

    ok: bool
    action: BarrierAction
    barrier: BarrierState
    """The barrier's state when the call returned (`unknown` if it could not be read)."""
    reason: str | None
    """Why it failed, None on success."""
    elapsed_s: float


class BarrierDriver:
    """Polls the loop and barrier inputs; opens and closes the barrier on request."""

    def __init__(self, config: ModbusBarrierConfig) -> None:
        self.config = config
        self._client: AsyncModbusSerialClient | None = None
        self._last_command: BarrierAction | None = None
        self._command_lock: asyncio.Lock | None = None
        # Reply accounting, fed by pymodbus's packet and PDU traces.
        self._awaiting_reply = False
        self._received = b""
        self.crc_errors = 0
        self.no_replies = 0
        self.retries = 0
        self._ctx = f"barrier unit {config.unit_id} on {config.port}"
        # The lane's traffic light: what the lane asks for, what it must show, what the
        # module was last told (None: not known, written at the next chance).
        self._last_status: BarrierStatus | None = None
        self._lamp_wanted: LampColour = "red"
        self.lamp: LampColour = "red"
        """The colour the traffic light must show now (red until a verified open)."""
        self.lamp_reason: str | None = None
        """Why `lamp` is red although green was asked for (None otherwise)."""
        self._lamp_written: LampColour | None = None
        self._lamp_mutex: asyncio.Lock | None = None
        self._lamp_listeners: list[LampListener] = []
        self._lamp_error_logged: str | None = None

    # ---------------------------------------------------------------- public API

    async def run(self, on_presence: PresenceCallback, on_health: HealthCallback) -> None:
        """Poll until cancelled: report debounced lane presence and health changes."""
        cfg = self.config
        loop = asyncio.get_running_loop()
        debouncer = PresenceDebouncer(cfg.presence_debounce_s)
        health = HealthTracker(down_after=cfg.down_after_failures)
        link = DeviceLink(
            self._ctx,
            logger,
            cfg.poll_interval_s,
            max(cfg.poll_interval_s, cfg.reconnect_max_s),
        )
        link.on_health = on_health
        try:
            while True:
                outcome = await self._poll()
                if outcome.status is not None:
                    self._retarget_lamp()
                    lamp_error = await self._sync_lamp_logged()
                    if lamp_error is not None:
                        outcome = dataclasses.replace(outcome, lamp_error=lamp_error)
                else:
                    self._lamp_written = None  # it may have restarted: write it again
                change = health.feed(outcome)
                if change is not None:
                    await link.set_health(*change)
                delay = cfg.poll_interval_s
                if outcome.status is not None:
                    link.back()
                    presence = debouncer.feed(outcome.status.lane_occupied, loop.time())
                    if presence is not None:
                        logger.info("%s: lane %s", self._ctx, "occupied" if presence else "free")
                        await on_presence(presence)
                elif health.status == "down":
                    await link.down(f"no valid reply: {outcome.error}")
                    delay = link.backoff.next()
                await asyncio.sleep(delay)
        finally:
            await self._lamp_red_on_exit()
            self.close()

    def add_lamp_listener(self, listener: LampListener) -> None:
        """Call `listener(colour)` whenever the colour the light must show changes."""
        self._lamp_listeners.append(listener)

    def want_lamp(self, colour: LampColour) -> LampColour:
        """Ask for a colour; return the one the light must show (see `codec.lamp_colour`).

        Nothing is written here: `sync_lamp` (and every poll of `run`) writes it.
        """
        self._lamp_wanted = colour
        self._retarget_lamp()
        return self.lamp

    async def sync_lamp(self) -> None:
        """Write the traffic light if the module may not show `lamp` yet.

        Raises `DeviceError` (the next poll tries again). Without lamp coils, nothing.
        """
        cfg = self.config
        if not cfg.registers.has_lamps:
            return
        async with self._lamp_lock():
            while self._lamp_written != self.lamp:
                colour = self.lamp
                self._lamp_written = None  # unknown until every write is answered
                for write in lamp_plan(colour, cfg.registers):
                    address, on = write.address, write.on
                    await self._request(
                        f"write lamp coil {address}",
                        lambda c: c.write_coil(address, on, device_id=cfg.unit_id),  # noqa: B023 (awaited at once)
                        FC_WRITE_COIL,
                    )
                self._lamp_written = colour
                logger.info("%s: lane signal %s", self._ctx, colour)

    async def status(self) -> BarrierStatus:
        """Read the inputs now. Raises `DeviceError` (or `TransportError`) if it cannot."""
        status, _ = await self._read_status()
        return status

    async def open_barrier(self) -> BarrierResult:
        """Open, and wait for the fully-open limit within `open_timeout_s`.

        On any failure (fault, no reply, timeout, cancellation) the barrier is commanded
        closed and the result says why.
        """
        async with self._lock():
            start = asyncio.get_running_loop().time()
            try:
                try:
                    before = await self.status()
                except DeviceError as err:
                    return await self._failed_open(f"controller not answering: {err}", start)
                if before.barrier == "fault":
                    return await self._failed_open(f"refused, {before.reason}", start)
                try:
                    await self._execute("open")
                    reached, last, error = await self._wait_for("open", self.config.open_timeout_s)
                except DeviceError as err:
                    return await self._failed_open(f"open command not carried out: {err}", start)
                if reached:
                    logger.info("%s: barrier open", self._ctx)
                    return self._result(True, "open", last, None, start)
                return await self._failed_open(
                    self._not_reached("open", self.config.open_timeout_s, last, error), start
                )
            except asyncio.CancelledError:
                logger.warning("%s: open cancelled, commanding close", self._ctx)
                await asyncio.shield(self._close_quietly())
                raise

    async def close_barrier(self) -> BarrierResult:
        """Close, and wait for the fully-closed limit within `close_timeout_s`."""
        async with self._lock():
            return await self._close(asyncio.get_running_loop().time())

    def close(self) -> None:
        """Close the serial port (the barrier is left as it is)."""
        if self._client is not None:
            self._client.close()
            self._client = None

    # ---------------------------------------------------------------- commands

    def _lock(self) -> asyncio.Lock:
        if self._command_lock is None:
            self._command_lock = asyncio.Lock()
        return self._command_lock

    def _lamp_lock(self) -> asyncio.Lock:
        if self._lamp_mutex is None:
            self._lamp_mutex = asyncio.Lock()
        return self._lamp_mutex

    def _retarget_lamp(self) -> None:
        colour, reason = lamp_colour(self._lamp_wanted, self._last_status, self._last_command)
        self.lamp_reason = reason
        if colour == self.lamp:
            return
        self.lamp = colour
        for listener in self._lamp_listeners:
            listener(colour)

    async def _sync_lamp_logged(self) -> str | None:
        """`sync_lamp`; a failure is logged once (until it succeeds) and returned."""
        try:
            await self.sync_lamp()
        except DeviceError as err:
            problem = str(err)
            if problem != self._lamp_error_logged:
                logger.error(
                    "%s: cannot set the lane signal %s: %s (check registers.red_lamp_coil "
                    "and green_lamp_coil, or set them null if no light is wired)",
                    self._ctx,
                    self.lamp,
                    problem,
                )
                self._lamp_error_logged = problem
            return problem
        if self._lamp_error_logged is not None:
            logger.info("%s: lane signal set again", self._ctx)
            self._lamp_error_logged = None
        return None

    async def _lamp_red_on_exit(self) -> None:
        """Leave the light red when the driver stops (best effort, bounded)."""
        if not self.config.registers.has_lamps or self._client is None:
            return
        self.want_lamp("red")
        with contextlib.suppress(DeviceError, TimeoutError):
            async with asyncio.timeout(LAMP_ON_EXIT_S):
                await self.sync_lamp()

    async def _close(self, start: float) -> BarrierResult:
        try:
            await self._execute("close")
            reached, last, error = await self._wait_for("closed", self.config.close_timeout_s)
        except DeviceError as err:
            logger.error("%s: close command failed: %s", self._ctx, err)
            return self._result(
                False, "close", None, f"close command not carried out: {err}", start
            )
        if reached:
            logger.info("%s: barrier closed", self._ctx)
            return self._result(True, "close", last, None, start)
        reason = self._not_reached("closed", self.config.close_timeout_s, last, error)
        logger.error("%s: %s", self._ctx, reason)
        return self._result(False, "close", last, reason, start)

    async def _close_quietly(self) -> None:
        result = await self._close(asyncio.get_running_loop().time())
        if not result.ok:
            logger.error("%s: barrier may not be closed: %s", self._ctx, result.reason)

    async def _failed_open(self, reason: str, start: float) -> BarrierResult:
        logger.warning("%s: open failed: %s; commanding close", self._ctx, reason)
        closed = await self._close(start)
        if closed.ok:
            reason = f"{reason}; barrier commanded closed and is closed"
        else:
            reason = f"{reason}; close commanded but failed too: {closed.reason}"
        return BarrierResult(
            ok=False,
            action="open",
            barrier=closed.barrier,
            reason=reason,
            elapsed_s=closed.elapsed_s,
        )

    async def _execute(self, action: BarrierAction) -> None:
        cfg = self.config
        self._last_command = action
        self._retarget_lamp()
        if action == "close":
            # Red before the arm moves down; a light that cannot be set does not stop it.
            await self._sync_lamp_logged()
        for write in command_plan(action, cfg.registers, cfg.command_mode, cfg.pulse_s):
            address, on = write.address, write.on
            await self._request(
                f"write coil {address}",
                lambda c: c.write_coil(address, on, device_id=cfg.unit_id),  # noqa: B023 (awaited at once)
                FC_WRITE_COIL,
            )
            if write.hold_s:
                await asyncio.sleep(write.hold_s)

    async def _wait_for(
        self, target: Literal["open", "closed"], timeout_s: float
    ) -> tuple[bool, BarrierStatus | None, str | None]:
        """Poll until the barrier is `target`, a fault shows, or `timeout_s` passes."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        step = min(self.config.poll_interval_s, 0.1)
        last: BarrierStatus | None = None
        error: str | None = None
        while True:
            try:
                last = await self.status()
                error = None
            except DeviceError as err:
                error = str(err)
            if last is not None and error is None:
                if last.barrier == target:
                    return True, last, None
                if last.barrier == "fault":
                    return False, last, None
            if loop.time() >= deadline:
                return False, last, error
            await asyncio.sleep(step)

    def _not_reached(
        self, target: str, timeout_s: float, last: BarrierStatus | None, error: str | None
    ) -> str:
        if last is not None and last.barrier == "fault":
            return f"barrier fault while going {target}: {last.reason}"
        if error is not None:
            return f"controller stopped answering while going {target}: {error}"
        state = last.barrier if last is not None else "unknown"
        limit = "fully-open" if target == "open" else "fully-closed"
        return (
            f"barrier did not reach {target} within {timeout_s:g} s "
            f"({limit} limit switch never active; last state {state}): jammed or obstructed?"
        )

    def _result(
        self,
        ok: bool,
        action: BarrierAction,
        last: BarrierStatus | None,
        reason: str | None,
        start: float,
    ) -> BarrierResult:
        return BarrierResult(
            ok=ok,
            action=action,
            barrier=last.barrier if last is not None else "unknown",
            reason=reason,
            elapsed_s=round(asyncio.get_running_loop().time() - start, 3),
        )

    # ---------------------------------------------------------------- polling

    async def _poll(self) -> PollOutcome:
        crc_before, retries_before = self.crc_errors, self.retries
        try:
            status, _ = await self._read_status()
        except DeviceError as err:
            return PollOutcome(
                error=str(err),
                crc_errors=self.crc_errors - crc_before,
                retries=self.retries - retries_before,
            )
        return PollOutcome(
            status=status,
            crc_errors=self.crc_errors - crc_before,
            retries=self.retries - retries_before,
        )

    async def _read_status(self) -> tuple[BarrierStatus, int | None]:
        cfg = self.config
        start, count = cfg.registers.input_span()
        reply = await self._request(
            "read discrete inputs",
            lambda c: c.read_discrete_inputs(start, count=count, device_id=cfg.unit_id),
            FC_READ_DISCRETE_INPUTS,
        )
        if len(reply.bits) < count:
            raise DeviceError(f"read discrete inputs: {len(reply.bits)} inputs for {count} asked")
        word: int | None = None
        if (address := cfg.registers.status_register) is not None:
            regs = await self._request(
                "read status register",
                lambda c: c.read_input_registers(address, count=1, device_id=cfg.unit_id),
                FC_READ_INPUT_REGISTERS,
            )
            if len(regs.registers) != 1:
                raise DeviceError(f"read status register: {len(regs.registers)} registers, not 1")
            word = int(regs.registers[0])
        status = decode_status(list(reply.bits), start, cfg.registers, self._last_command, word)
        self._last_status = status
        return status, word

    # ---------------------------------------------------------------- transport

    async def _connected(self) -> AsyncModbusSerialClient:
        cfg = self.config
        if self._client is None:
            self._client = AsyncModbusSerialClient(
                cfg.port,
                framer=FramerType.RTU,
                baudrate=cfg.baudrate,
                bytesize=cfg.bytesize,
                parity=cfg.parity,
                stopbits=cfg.stopbits,
                name=f"barrier-{cfg.unit_id}",
                reconnect_delay=0,  # reconnecting (with backoff) is ours
                timeout=cfg.response_timeout_s,
                retries=cfg.retries,
                trace_packet=self._trace_packet,
                trace_pdu=self._trace_pdu,
            )
        if not self._client.connected:
            try:
                opened = await self._client.connect()
            except (OSError, ValueError) as err:
                raise TransportError(f"cannot open {cfg.port!r}: {err}") from err
            if not opened:
                raise TransportError(f"cannot open {cfg.port!r}")
        return self._client

    async def _request(
        self,
        what: str,
        send: Callable[[AsyncModbusSerialClient], Awaitable[Any]],
        function_code: int,
    ) -> Any:
        """The module's reply to one request; DeviceError for an exception, for no valid
        reply, or for a reply of another function than asked (pymodbus checks the unit id
        and the CRC, not that)."""
        client = await self._connected()
        try:
            reply = await send(client)
        except ConnectionException as err:
            self.close()
            raise TransportError(f"{what}: port lost: {err}") from err
        except ModbusException as err:
            kind = self._settle_exchange()
            raise DeviceError(f"{what}: no valid reply ({kind or 'no_reply'})") from err
        finally:
            self._settle_exchange()
        if reply.isError():
            raise DeviceError(f"{what}: module answered with exception {reply.exception_code}")
        if reply.function_code != function_code:
            raise DeviceError(
                f"{what}: module answered function {reply.function_code}, not {function_code}"
            )
        self.retries += int(getattr(reply, "retries", 0) or 0)
        return reply

    def _trace_packet(self, sending: bool, data: bytes) -> bytes:
        if sending:
            self._settle_exchange()
            self._awaiting_reply = True
        else:
            self._received = data  # pymodbus passes its whole receive buffer each time
        return data

    def _trace_pdu(self, sending: bool, pdu: ModbusPDU) -> ModbusPDU:
        if not sending:
            self._awaiting_reply = False
            self._received = b""
        return pdu

    def _settle_exchange(self) -> str | None:
        """Count the previous request's reply as missing or corrupt if it never decoded."""
        kind: str | None = None
        if self._awaiting_reply:
            kind = classify_unanswered(self._received)
            if kind == "crc_error":
                self.crc_errors += 1
            elif kind == "no_reply":
                self.no_replies += 1
            logger.debug("%s: reply %s (%s)", self._ctx, kind, self._received.hex())
        self._awaiting_reply = False
        self._received = b""
        return kind

"""Async GNSS receiver driver: reads NMEA from a serial URL, reports fixes and health.

Health (reported only when it changes, with a detail string):
- `ok`: fixes with a position are arriving;
- `degraded`: the receiver talks but has no fix (tunnel, jamming, cold start);
- `down`: the port cannot be opened, was lost (unplugged), or sends nothing decodable
  for `no_data_timeout_s`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from devices.errors import TransportError
from devices.gnss.codec import GnssFix, NmeaStreamDecoder
from devices.gnss.port import ReceiverPort, open_receiver_port
from devices.lifecycle import DeviceLink, HealthCallback, HealthStatus

logger = logging.getLogger(__name__)

OnFix = Callable[[GnssFix], Awaitable[None]]


class NmeaGnssConfig(BaseModel):
    """A GNSS receiver speaking NMEA 0183 on a serial port."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["nmea"] = Field(description="Driver selector: an NMEA 0183 receiver.")
    port: str = Field(
        description="pyserial URL: /dev/ttyUSB0, a stub's pty or link path, socket://host:port"
    )
    baudrate: int = Field(default=9600, gt=0, description="Line speed in bit/s.")
    bytesize: Literal[5, 6, 7, 8] = Field(default=8, description="Data bits per character.")
    parity: Literal["N", "E", "O", "M", "S"] = Field(default="N", description="Parity.")
    stopbits: float = Field(default=1, description="Stop bits: 1, 1.5 or 2.")
    no_data_timeout_s: float = Field(
        default=5.0, gt=0, description="No decodable sentence for this long means `down`."
    )
    reconnect_min_s: float = Field(
        default=0.5, gt=0, description="First wait before reopening a lost port."
    )
    reconnect_max_s: float = Field(
        default=10.0, gt=0, description="Longest wait between reopen attempts (doubling)."
    )

    @field_validator("stopbits")
    @classmethod
    def _stopbits_a_uart_has(cls, value: float) -> float:
        if value not in (1, 1.5, 2):
            raise ValueError(f"stopbits must be 1, 1.5 or 2, not {value:g}")
        return value


class GnssDriver:
    """Runs one receiver until cancelled; survives unplug/replug with the same URL."""

    def __init__(self, config: NmeaGnssConfig) -> None:
        self.config = config
        self.decoder = NmeaStreamDecoder()
        #: The open port while there is one (its `serial` shows the line settings).
        self.port: ReceiverPort | None = None
        self.link = DeviceLink(
            f"gnss {config.port}", logger, config.reconnect_min_s, config.reconnect_max_s
        )

    @property
    def health(self) -> tuple[HealthStatus, str] | None:
        """The last reported health and its detail (None before the first report)."""
        return self.link.health

    async def run(self, on_fix: OnFix, on_health: HealthCallback) -> None:
        self.link.on_health = on_health
        port = self.config.port
        while True:
            try:
                opened = await open_receiver_port(
                    port,
                    baudrate=self.config.baudrate,
                    bytesize=self.config.bytesize,
                    parity=self.config.parity,
                    stopbits=self.config.stopbits,
                )
            except TransportError as err:
                await self.link.down(f"cannot open {port}: {err}")
                await self.link.backoff.wait()
                continue
            self.link.back()
            self.port = opened
            try:
                reason = await self._read(opened.reader, on_fix)
            finally:
                self.port = None
                await opened.close()  # bounded: a port may never confirm its close
            await self.link.down(f"{port}: {reason}")
            self.decoder = NmeaStreamDecoder()
            await self.link.backoff.wait()

    async def _read(self, reader: asyncio.StreamReader, on_fix: OnFix) -> str:
        """Read until the port goes away; return why."""
        timeout = self.config.no_data_timeout_s
        loop = asyncio.get_running_loop()
        last_sentence = loop.time()
        while True:
            try:
                # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a
                # cancellation that lands as the read completes (the agent then hangs on stop).
                async with asyncio.timeout(timeout):
                    data = await reader.read(4096)
            except TimeoutError:
                data = None
            except (OSError, TransportError) as err:
                return f"read failed: {err}"
            if data == b"":
                return "port closed (hangup)"
            before = self.decoder.stats.sentences
            fixes = self.decoder.feed(data) if data else []
            now = loop.time()
            if self.decoder.stats.sentences > before:
                last_sentence = now
            elif now - last_sentence >= timeout:
                await self.link.set_health("down", f"no NMEA data for {timeout:g} s")
            for fix in fixes:
                if fix.mode >= 2:  # never an epoch the receiver called invalid
                    await self.link.set_health("ok", f"{fix.mode}D fix, {fix.sats_used} sats")
                else:
                    await self.link.set_health("degraded", "receiver sends data but has no fix")
                await on_fix(fix)

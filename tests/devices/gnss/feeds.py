"""NMEA for driver tests: epochs with and without fix, and a receiver behind a TCP port."""

from __future__ import annotations

import asyncio
import contextlib

from devices.gnss.codec import encode_sentence

LAT = 22 + 32.1234 / 60
LON = 114 + 3.5678 / 60


def _hms(second: int) -> str:
    return f"{8 + second // 3600:02d}{second // 60 % 60:02d}{second % 60:02d}.00"


def fix_epoch(second: int) -> bytes:
    """RMC, GGA, GSA of one second with a 3D fix at (LAT, LON)."""
    t = _hms(second)
    return "".join(
        encode_sentence(body)
        for body in (
            f"GNRMC,{t},A,2232.1234,N,11403.5678,E,10.0,90.0,231126,,,A,V",
            f"GNGGA,{t},2232.1234,N,11403.5678,E,1,09,0.9,35.2,M,-3.0,M,,",
            "GNGSA,A,3,02,05,12,15,18,,,,,,,,1.5,0.9,1.2,1",
        )
    ).encode()


def no_fix_epoch(second: int) -> bytes:
    """The same second from a receiver that talks but has no fix (empty fields)."""
    t = _hms(second)
    return "".join(
        encode_sentence(body)
        for body in (
            f"GNRMC,{t},V,,,,,,,231126,,,N,V",
            f"GNGGA,{t},,,,,0,00,99.99,,,,,,",
            "GNGSA,A,1,,,,,,,,,,,,,99.99,99.99,99.99,1",
        )
    ).encode()


def invalid_epoch(second: int) -> bytes:
    """A position the receiver itself calls invalid (GGA quality 0, RMC V)."""
    t = _hms(second)
    return "".join(
        encode_sentence(body)
        for body in (
            f"GNRMC,{t},V,2232.1234,N,11403.5678,E,,,231126,,,N,V",
            f"GNGGA,{t},2232.1234,N,11403.5678,E,0,04,,35.2,M,-3.0,M,,",
        )
    ).encode()


class TcpReceiver:
    """A receiver behind a serial-to-Ethernet converter on 127.0.0.1:`port`.

    `write()` sends to every connected client; `unplug()` stops listening and drops
    the clients (the device is gone); `start()` brings it back on the same port.
    """

    def __init__(self, port: int) -> None:
        self.port = port
        self.connections = 0
        self._server: asyncio.Server | None = None
        self._clients: list[asyncio.StreamWriter] = []
        self._connected = asyncio.Event()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._clients.append(writer)
        self._connected.set()
        with contextlib.suppress(ConnectionError):
            await reader.read()  # the driver never writes; EOF when it closes
        if writer in self._clients:
            self._clients.remove(writer)
        writer.close()

    async def wait_connected(self, count: int, within_s: float = 5.0) -> None:
        async with asyncio.timeout(within_s):
            while self.connections < count or not self._clients:
                self._connected.clear()
                await self._connected.wait()

    def write(self, data: bytes) -> None:
        for client in self._clients:
            client.write(data)

    async def unplug(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()  # no new connections
        for client in self._clients:
            client.close()
        self._clients.clear()
        if server is not None:
            await server.wait_closed()

    async def close(self) -> None:
        await self.unplug()

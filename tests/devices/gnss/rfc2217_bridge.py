"""A small RFC 2217 server for tests: a TCP port in front of a pty, as a terminal server
(a serial-to-Ethernet converter) puts one in front of a receiver's UART.

The Telnet/RFC 2217 protocol state is pyserial's `serial.rfc2217.PortManager`; this
module is the bridge around it: it accepts one client at a time, passes the client's
bytes through the manager (which applies SET-BAUDRATE, SET-DATASIZE, ... to the
device end and answers them) and sends the pty's output to the client, escaped.
"""

from __future__ import annotations

import asyncio
import contextlib
import termios
from typing import Any

import serial
from serial.rfc2217 import PortManager


class PtyEnd:
    """The device end as `PortManager` sees a serial port.

    Line settings go to the pty through pyserial (termios); a setting the pty refuses
    raises `ValueError`, so the manager answers with the setting kept, as a real
    server does with one its UART cannot do. A pty has no modem lines: they read as a
    ready device, and what the client asks of DTR/RTS/break is only kept.
    """

    cts = True
    dsr = True
    ri = False
    cd = True

    def __init__(self, path: str) -> None:
        self.port: Any = serial.Serial(path, timeout=0)
        self.requested: list[tuple[str, object]] = []
        self.rts = True
        self.dtr = True
        self.break_condition = False
        self.xonxoff = False
        self.rtscts = False

    def _apply(self, name: str, value: object) -> None:
        if getattr(self.port, name) == value:
            return
        self.requested.append((name, value))
        old = getattr(self.port, name)
        try:
            setattr(self.port, name, value)
        except (termios.error, OSError, ValueError) as err:
            # pyserial keeps the value it could not apply: put the old one back
            with contextlib.suppress(termios.error, OSError, ValueError):
                setattr(self.port, name, old)
            raise ValueError(f"the pty refuses {name}={value!r}: {err}") from err

    @property
    def baudrate(self) -> int:
        return int(self.port.baudrate)

    @baudrate.setter
    def baudrate(self, value: int) -> None:
        self._apply("baudrate", value)

    @property
    def bytesize(self) -> int:
        return int(self.port.bytesize)

    @bytesize.setter
    def bytesize(self, value: int) -> None:
        self._apply("bytesize", value)

    @property
    def parity(self) -> str:
        return str(self.port.parity)

    @parity.setter
    def parity(self, value: str) -> None:
        self._apply("parity", value)

    @property
    def stopbits(self) -> float:
        return float(self.port.stopbits)

    @stopbits.setter
    def stopbits(self, value: float) -> None:
        self._apply("stopbits", value)

    def reset_input_buffer(self) -> None:
        self.port.reset_input_buffer()

    def reset_output_buffer(self) -> None:
        self.port.reset_output_buffer()

    def close(self) -> None:
        self.port.close()


class _Connection:
    """What `PortManager` writes to: the client's TCP stream."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer

    def write(self, data: bytes) -> None:
        self.writer.write(data)


class Rfc2217Bridge:
    """RFC 2217 on 127.0.0.1 (a free port unless given) in front of the pty `path`."""

    def __init__(self, path: str, port: int = 0) -> None:
        self.end = PtyEnd(path)
        self.port = port
        self.connections = 0
        self.from_client = bytearray()
        self._server: asyncio.Server | None = None
        self._clients: set[asyncio.StreamWriter] = set()

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._clients):
            writer.close()
        if self._server is not None:
            await self._server.wait_closed()
        self.end.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._clients.add(writer)
        loop = asyncio.get_running_loop()
        manager = PortManager(self.end, _Connection(writer))
        fd = self.end.port.fileno()

        def device_output() -> None:
            try:
                data = self.end.port.read(4096)
            except serial.SerialException:
                return
            if data:
                writer.write(b"".join(manager.escape(data)))

        loop.add_reader(fd, device_output)
        try:
            while chunk := await reader.read(4096):
                # Telnet commands are handled inside; what is left is data for the device.
                data = b"".join(manager.filter(chunk))
                self.from_client += data
                if data:
                    self.end.port.write(data)
        except ConnectionError:
            pass
        finally:
            loop.remove_reader(fd)
            self._clients.discard(writer)
            writer.close()

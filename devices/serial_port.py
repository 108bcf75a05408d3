"""Open a serial port by URL, the pyserial way: the caller never knows which it has.

Accepted URLs are whatever `serial.serial_for_url` accepts: a device path
(`/dev/ttyUSB0`), a firmware stub's pty (`/dev/pts/7`), `socket://host:port`,
`rfc2217://host:port`, `loop://`, and `spy://<url>` for a hexdump trace.
"""

from __future__ import annotations

import asyncio
from typing import Literal

import serial
import serial_asyncio_fast

from devices.errors import TransportError

Parity = Literal["N", "E", "O", "M", "S"]


async def open_serial(
    url: str,
    baudrate: int = 9600,
    bytesize: int = 8,
    parity: Parity = "N",
    stopbits: float = 1,
    limit: int | None = None,
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Open `url` as an asyncio stream pair, or raise `TransportError` saying why."""
    try:
        return await serial_asyncio_fast.open_serial_connection(
            url=url,
            baudrate=baudrate,
            bytesize=bytesize,
            parity=parity,
            stopbits=stopbits,
            limit=limit,
        )
    except (serial.SerialException, OSError, ValueError) as err:
        raise TransportError(f"cannot open serial port {url!r}: {err}") from err

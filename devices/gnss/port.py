"""The receiver's port, opened from a pyserial URL as an asyncio byte stream.

`serial_asyncio_fast` watches the port's file descriptor, which a device path, a pty
and `socket://` have. pyserial's `loop://` and `rfc2217://` ports have none (their
`fileno()` raises `io.UnsupportedOperation`; rfc2217 reads its socket in a thread of
its own): for those a reader thread does blocking reads with a short timeout and
hands the bytes to the event loop. Either way the caller gets an
`asyncio.StreamReader` that ends (EOF) or fails (`TransportError`) when the port goes.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import serial

from devices.errors import TransportError
from devices.serial_port import Parity, open_serial

#: How long one blocking read of a port without file descriptor may wait; bounds how
#: late the reader thread notices that the port is being closed.
READ_TIMEOUT_S = 0.05
_CHUNK = 4096


@dataclass
class ReceiverPort:
    """An open port: `reader` yields its bytes; `serial` is the pyserial object, with the
    line settings it was opened with (`baudrate`, `bytesize`, `parity`, `stopbits`)."""

    url: str
    reader: asyncio.StreamReader
    serial: Any
    _close: Callable[[], Awaitable[None]]

    async def close(self) -> None:
        """Close the port; bounded, so that a port that never confirms cannot hang us."""
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._close(), 2.0)


def has_file_descriptor(url: str) -> bool:
    """Whether the pyserial port behind `url` can be watched by the event loop: its
    class has a `fileno()` of its own, not the one of `io.IOBase` that raises
    `io.UnsupportedOperation` (asked without opening: an unopened port's `fileno()`
    fails in different ways)."""
    try:
        probe = serial.serial_for_url(url, do_not_open=True)
    except (serial.SerialException, OSError, ValueError) as err:
        raise TransportError(f"cannot open serial port {url!r}: {err}") from err
    return type(probe).fileno is not io.IOBase.fileno


async def open_receiver_port(
    url: str,
    baudrate: int = 9600,
    bytesize: int = 8,
    parity: Parity = "N",
    stopbits: float = 1,
) -> ReceiverPort:
    """Open `url` with these line settings, or raise `TransportError` saying why."""
    if has_file_descriptor(url):
        reader, writer = await open_serial(
            url, baudrate=baudrate, bytesize=bytesize, parity=parity, stopbits=stopbits
        )

        async def close_stream() -> None:
            writer.close()
            await writer.wait_closed()

        return ReceiverPort(url, reader, writer.transport.get_extra_info("serial"), close_stream)
    return await _open_threaded(url, baudrate, bytesize, parity, stopbits)


async def _open_threaded(
    url: str, baudrate: int, bytesize: int, parity: Parity, stopbits: float
) -> ReceiverPort:
    loop = asyncio.get_running_loop()

    def open_port() -> Any:
        return serial.serial_for_url(
            url,
            baudrate=baudrate,
            bytesize=bytesize,
            parity=parity,
            stopbits=stopbits,
            timeout=READ_TIMEOUT_S,
        )

    try:
        port = await loop.run_in_executor(None, open_port)
    except (serial.SerialException, OSError, ValueError) as err:
        raise TransportError(f"cannot open serial port {url!r}: {err}") from err
    reader = asyncio.StreamReader()
    stop = threading.Event()
    thread = threading.Thread(
        target=_pump, args=(port, url, reader, loop, stop), name=f"gnss-read {url}", daemon=True
    )
    thread.start()

    async def close_threaded() -> None:
        stop.set()
        await asyncio.to_thread(thread.join, 1.0)
        await asyncio.to_thread(port.close)

    return ReceiverPort(url, reader, port, close_threaded)


def _pump(
    port: Any,
    url: str,
    reader: asyncio.StreamReader,
    loop: asyncio.AbstractEventLoop,
    stop: threading.Event,
) -> None:
    """Reader thread: blocking reads until `stop`; the port's loss ends the stream."""

    def deliver(callback: Callable[..., None], *args: object) -> None:
        with contextlib.suppress(RuntimeError):  # the event loop is already closed
            loop.call_soon_threadsafe(callback, *args)

    try:
        while not stop.is_set():
            data = port.read(1)
            if data:
                waiting = port.in_waiting
                if waiting:
                    data += port.read(min(waiting, _CHUNK))
                deliver(reader.feed_data, data)
    except (serial.SerialException, OSError, ValueError) as err:
        if not stop.is_set():
            deliver(reader.set_exception, TransportError(f"{url}: {err}"))
        return
    deliver(reader.feed_eof)

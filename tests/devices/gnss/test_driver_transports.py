"""The driver over every kind of port URL it accepts, with the line settings it is given.

- `socket://` to a TCP server in the test that sends NMEA, goes away and comes back;
- `loop://`, pyserial's loopback (what is written to the port is read back);
- `rfc2217://` through a terminal server (tests/devices/gnss/rfc2217_bridge.py) in
  front of a pty: the framing goes over RFC 2217 and lands in the pty's termios;
- a pty opened directly, with 4800 baud 8N2: termios shows what the driver set.

A Linux pty keeps the baud rate and the stop bits but forces 8 data bits without
parity (CS7 or PARENB is refused with EINVAL), so 7E1 is checked on `loop://` and as
the terminal server receives it, not in a pty's termios.
"""

from __future__ import annotations

import asyncio
import os
import termios
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from devices.gnss.codec import GnssFix
from devices.gnss.driver import NmeaGnssConfig
from tests.devices.gnss.feeds import LAT, LON, TcpReceiver, fix_epoch
from tests.devices.gnss.rfc2217_bridge import Rfc2217Bridge
from tests.firmware_stubs.gnss.harness import Reader, free_port, reading

FAST = {"reconnect_min_s": 0.05, "reconnect_max_s": 0.2}


def seconds(fixes: list[GnssFix]) -> list[int]:
    return [f.time.second for f in fixes if f.time is not None]


def assert_fixes_at_the_feed_position(fixes: list[GnssFix]) -> None:
    assert fixes
    for fix in fixes:
        assert fix.mode == 3
        assert fix.receiver_valid
        assert fix.lat is not None
        assert fix.lon is not None
        assert abs(fix.lat - LAT) < 1e-9
        assert abs(fix.lon - LON) < 1e-9
        assert fix.sats_used == 9


async def feed(write: object, first: int, count: int) -> None:
    """Write `count` 1 Hz epochs from second `first`, a little apart."""
    assert callable(write)
    for second in range(first, first + count):
        write(fix_epoch(second))
        await asyncio.sleep(0.01)


async def port_open(r: Reader, within_s: float = 8.0) -> None:
    await r.wait_for(lambda: r.driver.port is not None, within_s)


@pytest.fixture
def pty() -> Iterator[tuple[int, int, str]]:
    """A pty pair: (master fd, slave fd, slave path); the test keeps both ends."""
    master, slave = os.openpty()
    os.set_blocking(master, False)
    try:
        yield master, slave, os.ttyname(slave)
    finally:
        os.close(master)
        os.close(slave)


def line_settings(fd: int) -> tuple[int, int, int, bool, bool, bool]:
    """(ispeed, ospeed, data bits, parity enabled, odd parity, 2 stop bits) of a tty."""
    _, _, cflag, _, ispeed, ospeed, _ = termios.tcgetattr(fd)
    bits = {termios.CS5: 5, termios.CS6: 6, termios.CS7: 7, termios.CS8: 8}[cflag & termios.CSIZE]
    return (
        ispeed,
        ospeed,
        bits,
        bool(cflag & termios.PARENB),
        bool(cflag & termios.PARODD),
        bool(cflag & termios.CSTOPB),
    )


async def test_socket_url_reads_and_reconnects_when_the_server_comes_back() -> None:
    server = TcpReceiver(free_port())
    await server.start()
    url = f"socket://127.0.0.1:{server.port}"
    try:
        async with reading(url, **FAST) as r:
            await server.wait_connected(1)
            await feed(server.write, 0, 4)
            await r.wait_for(lambda: len(r.fixes) >= 4)
            assert r.health == ["ok"]
            # the converter goes away: hangup, then refused reconnects for a while
            await server.unplug()
            await r.wait_for(lambda: r.health[-1] == "down")
            await asyncio.sleep(0.6)  # several refused attempts at 0.05-0.2 s
            assert r.health == ["ok", "down"]  # reported once, not once per attempt
            assert "hangup" in r.details[-1]
            assert server.connections == 1
            # ... and comes back on the same port: the driver reconnects by itself
            await server.start()
            await server.wait_connected(2)
            await feed(server.write, 10, 4)
            await r.wait_for(lambda: len(r.fixes) >= 8)
    finally:
        await server.close()
    assert r.health == ["ok", "down", "ok"]
    assert server.connections == 2
    assert seconds(r.fixes) == [0, 1, 2, 3, 10, 11, 12, 13]
    assert r.fixes[0].time == datetime(2026, 11, 23, 8, 0, 0, tzinfo=UTC)
    assert_fixes_at_the_feed_position(r.fixes)


async def test_loop_url_reads_what_is_written_to_the_port_with_7e1_at_4800() -> None:
    config = {"baudrate": 4800, "bytesize": 7, "parity": "E", "stopbits": 1}
    async with reading("loop://", **config, **FAST) as r:
        await port_open(r)
        assert r.driver.port is not None
        loop_port = r.driver.port.serial
        settings = (loop_port.baudrate, loop_port.bytesize, loop_port.parity, loop_port.stopbits)
        assert settings == (4800, 7, "E", 1)
        await feed(loop_port.write, 0, 5)
        await r.wait_for(lambda: len(r.fixes) >= 5)
    assert r.health == ["ok"]
    assert seconds(r.fixes) == [0, 1, 2, 3, 4]
    assert_fixes_at_the_feed_position(r.fixes)
    assert r.driver.decoder.stats.bad_checksum == 0


async def test_pty_gets_4800_baud_8n2_from_the_config(pty: tuple[int, int, str]) -> None:
    master, slave, path = pty
    assert line_settings(slave)[0] != termios.B4800  # not already so
    config = {"baudrate": 4800, "bytesize": 8, "parity": "N", "stopbits": 2}
    async with reading(path, **config, **FAST) as r:
        await port_open(r)
        assert line_settings(slave) == (termios.B4800, termios.B4800, 8, False, False, True)
        assert r.driver.port is not None
        opened = r.driver.port.serial
        settings = (opened.baudrate, opened.bytesize, opened.parity, opened.stopbits)
        assert settings == (4800, 8, "N", 2)
        await feed(lambda data: os.write(master, data), 0, 4)
        await r.wait_for(lambda: len(r.fixes) >= 4)
    assert r.health == ["ok"]
    assert seconds(r.fixes) == [0, 1, 2, 3]
    assert_fixes_at_the_feed_position(r.fixes)


async def test_rfc2217_url_sets_the_framing_on_the_far_port_and_reconnects(
    pty: tuple[int, int, str],
) -> None:
    master, slave, path = pty
    bridge = Rfc2217Bridge(path)
    port = await bridge.start()
    config = {"baudrate": 4800, "bytesize": 8, "parity": "N", "stopbits": 2}
    try:
        async with reading(f"rfc2217://127.0.0.1:{port}", **config, **FAST) as r:
            await port_open(r)
            # the settings went over RFC 2217 and the terminal server put them on its port
            assert ("baudrate", 4800) in bridge.end.requested
            assert ("stopbits", 2) in bridge.end.requested
            assert line_settings(slave) == (termios.B4800, termios.B4800, 8, False, False, True)
            await feed(lambda data: os.write(master, data), 0, 4)
            await r.wait_for(lambda: len(r.fixes) >= 4)
            assert r.health == ["ok"]
            # the terminal server goes away, and comes back on the same TCP port
            await bridge.close()
            await r.wait_for(lambda: r.health[-1] == "down")
            bridge = Rfc2217Bridge(path, port)
            await bridge.start()
            await r.wait_for(lambda: r.driver.port is not None and bridge.connections == 1)
            await feed(lambda data: os.write(master, data), 10, 4)
            await r.wait_for(lambda: len(r.fixes) >= 8)
    finally:
        await bridge.close()
    assert r.health == ["ok", "down", "ok"]
    assert seconds(r.fixes) == [0, 1, 2, 3, 10, 11, 12, 13]
    assert_fixes_at_the_feed_position(r.fixes)
    assert bridge.from_client == b""  # the driver only listens


async def test_rfc2217_framing_the_far_port_refuses_is_down_with_the_reason(
    pty: tuple[int, int, str],
) -> None:
    # 7E1 reaches the terminal server, whose port (a pty) cannot do it: it answers
    # with the setting it kept, the client gives up, and the driver says why.
    _, _, path = pty
    bridge = Rfc2217Bridge(path)
    port = await bridge.start()
    config = {"baudrate": 4800, "bytesize": 7, "parity": "E", "stopbits": 1}
    try:
        async with reading(f"rfc2217://127.0.0.1:{port}", **config, **FAST) as r:
            await r.wait_for(lambda: bool(r.health), within_s=8)
    finally:
        await bridge.close()
    assert ("bytesize", 7) in bridge.end.requested
    assert r.health == ["down"]
    assert "rejected value for option 'datasize'" in r.details[0]
    assert r.fixes == []


def test_stop_bits_no_uart_has_are_a_config_error() -> None:
    with pytest.raises(ValidationError, match=r"stopbits must be 1, 1\.5 or 2, not 3"):
        NmeaGnssConfig(type="nmea", port="loop://", stopbits=3)
    assert NmeaGnssConfig(type="nmea", port="loop://", stopbits=1.5).stopbits == 1.5

"""The stub as a process: announces its pty, answers raw RTU requests, injects faults."""

from __future__ import annotations

import os
import select
import socket
import subprocess
import sys
import termios
import time
import tty
from collections.abc import Iterator
from pathlib import Path

import pytest
from pymodbus.framer import FramerRTU

PROJECT_ROOT = Path(__file__).resolve().parents[3]


def crc(frame: bytes) -> bytes:
    return frame + FramerRTU.compute_CRC(frame).to_bytes(2, "big")


@pytest.fixture
def stub() -> Iterator[tuple[int, int]]:
    """(fd of the pty opened like an agent would, control port)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "firmware_stubs.barrier", "--unit-id", "7", "--travel-s", "0.5"],
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    path = process.stdout.readline().strip()
    assert process.stdout.readline().strip() == "READY"
    control = process.stdout.readline().strip()
    assert control.startswith("CONTROL 127.0.0.1:")
    fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
    tty.setraw(fd, termios.TCSANOW)
    try:
        yield fd, int(control.rsplit(":", 1)[1])
    finally:
        os.close(fd)
        process.terminate()
        assert process.wait(timeout=5) == 0


def exchange(fd: int, request: bytes, wait: float = 0.5) -> bytes:
    os.write(fd, request)
    received = b""
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.05)
        if ready:
            received += os.read(fd, 256)
        elif received:
            break
    return received


def control(port: int, line: str) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(line.encode() + b"\n")
        return conn.makefile().readline().strip()


def test_answers_reads_and_writes_for_its_unit_only(stub: tuple[int, int]) -> None:
    fd, port = stub
    # FC 0x02, 5 inputs from 0: only the closed limit (DI3) -> one data byte 0x08.
    assert exchange(fd, crc(bytes.fromhex("0702 0000 0005"))) == crc(bytes.fromhex("07 02 01 08"))
    # FC 0x04 status word and firmware version.
    assert exchange(fd, crc(bytes.fromhex("0704 0000 0002"))) == crc(
        bytes.fromhex("07 04 04 0001 0102")
    )
    # FC 0x05 write coil 0 ON echoes the request.
    request = crc(bytes.fromhex("0705 0000 ff00"))
    assert exchange(fd, request) == request
    # Another unit's request, a request with a bad CRC, a broadcast: no answer.
    assert exchange(fd, crc(bytes.fromhex("0102 0000 0005")), wait=0.3) == b""
    assert exchange(fd, bytes.fromhex("0702000000050000"), wait=0.3) == b""
    assert exchange(fd, crc(bytes.fromhex("0005 0001 ff00")), wait=0.3) == b""
    # Out of range: exception 0x02 (illegal data address); unknown FC: exception 0x01.
    assert exchange(fd, crc(bytes.fromhex("0702 0006 0005"))) == crc(bytes.fromhex("07 82 02"))
    assert exchange(fd, crc(bytes.fromhex("0707"))) == crc(bytes.fromhex("07 87 01"))
    state = control(port, "state")
    assert '"commands":["open","close"]' in state  # the broadcast pulsed CLOSE (coil 1)


def test_faults_on_demand(stub: tuple[int, int]) -> None:
    fd, port = stub
    read = crc(bytes.fromhex("0702 0000 0005"))
    assert control(port, "arrive").startswith("OK ")
    assert exchange(fd, read) == crc(bytes.fromhex("07 02 01 09"))  # loop 1 + closed limit
    assert control(port, "crc 1").startswith("OK ")
    corrupted = exchange(fd, read)
    assert corrupted[:-2] == bytes.fromhex("07 02 01 09")
    assert corrupted != crc(bytes.fromhex("07 02 01 09"))
    assert control(port, "crc 0").startswith("OK ")
    assert control(port, "silent on").startswith("OK ")
    assert exchange(fd, read, wait=0.3) == b""
    assert control(port, "silent off").startswith("OK ")
    assert control(port, "stuck open on").startswith("OK ")
    assert exchange(fd, read) == crc(bytes.fromhex("07 02 01 0d"))  # loop + both limits
    assert control(port, "bogus").startswith("ERR ")

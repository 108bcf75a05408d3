"""A load generator for the server bench: MQTT 3.1.1 PUBLISH packets at QoS 1, built
before the clock starts and written straight to the socket.

The trucks of the bench share the machine (2 cores) with the server they load. A paho
client spends ≈ 40 µs of interpreter time a message to publish — at 10,000 positions a
second most of a core, which the server then lacks, so the bench would measure the
publisher. Here each packet is encoded once in advance (MQTT 3.1.1, OASIS standard,
§3.3 PUBLISH: fixed header 0x32, remaining length, topic, packet identifier, payload);
sending is a `sendall` of the packets due, and the PUBACKs (§3.4, four bytes each) are
counted by a reader thread. The broker sees an ordinary MQTT client.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Sequence

Message = tuple[str, bytes]

#: Packets written per `sendall` at most; the pacing step.
CHUNK = 64
#: Unacknowledged packets allowed before the writer waits (packet ids are 16 bits).
WINDOW = 30_000


def _remaining_length(n: int) -> bytes:
    out = bytearray()
    while True:
        n, digit = divmod(n, 128)
        out.append(digit | 0x80 if n else digit)
        if not n:
            return bytes(out)


def _string(text: str) -> bytes:
    raw = text.encode()
    return struct.pack("!H", len(raw)) + raw


def connect_packet(client_id: str, keepalive_s: int = 60) -> bytes:
    """CONNECT, MQTT 3.1.1 (protocol level 4), clean session."""
    variable = _string("MQTT") + bytes([4, 0x02]) + struct.pack("!H", keepalive_s)
    body = variable + _string(client_id)
    return b"\x10" + _remaining_length(len(body)) + body


def publish_packet(topic: str, payload: bytes, packet_id: int) -> bytes:
    """PUBLISH at QoS 1, not retained."""
    body = _string(topic) + struct.pack("!H", packet_id) + payload
    return b"\x32" + _remaining_length(len(body)) + body


def _read_exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("the broker closed the connection")
        data += chunk
    return data


class _Acks:
    """Counts PUBACKs (and skips any other packet) in a thread of its own."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self.count = 0
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        buffer = b""
        try:
            while True:
                data = self._sock.recv(65536)
                if not data:
                    self.error = ConnectionError("the broker closed the connection")
                    return
                buffer += data
                offset = 0
                while len(buffer) - offset >= 2:
                    kind = buffer[offset] >> 4
                    length, used, multiplier = 0, 1, 1
                    while True:  # the remaining length, one to four bytes
                        if offset + used >= len(buffer):
                            length = -1
                            break
                        byte = buffer[offset + used]
                        length += (byte & 0x7F) * multiplier
                        multiplier *= 128
                        used += 1
                        if not byte & 0x80:
                            break
                    if length < 0 or len(buffer) - offset < used + length:
                        break
                    if kind == 4:  # PUBACK
                        self.count += 1
                    offset += used + length
                buffer = buffer[offset:]
        except OSError as err:
            self.error = err


def publish(
    host: str,
    port: int,
    client_id: str,
    messages: Sequence[Message],
    rate: float | None = None,
    timeout_s: float = 120.0,
) -> float:
    """Publish `messages` in order at QoS 1, as fast as the broker takes them or at
    `rate` a second, and wait for every PUBACK; the seconds it took."""
    packets = [publish_packet(t, p, i % 65535 + 1) for i, (t, p) in enumerate(messages)]
    sock = socket.create_connection((host, port), timeout=timeout_s)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.sendall(connect_packet(client_id))
        connack = _read_exactly(sock, 4)
        if connack[0] != 0x20 or connack[3] != 0:
            raise ConnectionError(f"the broker refused the connection: {connack.hex()}")
        sock.settimeout(None)
        acks = _Acks(sock)
        started = time.monotonic()
        deadline = started + timeout_s
        sent = 0
        while sent < len(packets):
            if rate is not None:
                ahead = started + sent / rate - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
            while sent - acks.count >= WINDOW:
                _check(acks, deadline)
                time.sleep(0.001)
            chunk = packets[sent : sent + CHUNK]
            sock.sendall(b"".join(chunk))
            sent += len(chunk)
        while acks.count < len(packets):
            _check(acks, deadline)
            time.sleep(0.002)
        taken = time.monotonic() - started
        sock.sendall(b"\xe0\x00")  # DISCONNECT
        return taken
    finally:
        sock.close()


def _check(acks: _Acks, deadline: float) -> None:
    if acks.error is not None:
        raise ConnectionError(f"reading PUBACKs failed: {acks.error}")
    if time.monotonic() > deadline:
        raise TimeoutError(f"only {acks.count} PUBACKs before the timeout")

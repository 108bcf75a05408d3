"""Receiving thousands of messages a second through aiomqtt 2.x and paho-mqtt 2.2.

Four costs per received message, found by profiling the server's ingest (py-spy, GIL
samples, `bench/bench_server.py`, 2 cores) and removed here without changing what a
caller sees:

- **aiomqtt's message iterator** (`async for m in client.messages`) creates a task and
  runs `asyncio.wait` for every message, then wraps paho's message in one of its own:
  ≈ 22 % of the ingest's interpreter time. `deliver_to` hands paho's messages to a
  callback instead, in the event loop's thread, as paho parses them; aiomqtt's queue
  then stays empty and `client.messages` only waits for the connection to end (it raises
  `MqttError` then, as before).
- **paho's `MQTTMessageInfo`** builds a `threading.Condition` for every message, also
  for every message it receives, where it is never used (it serves `publish`'s
  `wait_for_publish`): ≈ 9 %. `install` makes the condition when it is first used.
- **paho's per-topic callbacks**: `_handle_on_message` walks its topic-filter tree for
  every message even when no per-topic callback is set (none of BondWatch's clients set
  one): ≈ 6 %. `install` goes straight to `on_message` while the tree is empty.

- **paho's reads**: it takes each packet from the socket in three or more `recv` calls (the
  packet type, each byte of the remaining length, then the rest): five system calls per
  position, ≈ 4 % of the ingest's CPU (cProfile, a 40,000-position backlog). `install`
  has it read up to `READ_SIZE` bytes at once and hand them out from a buffer; `loop_read`
  goes on while the buffer holds bytes, so that none waits there for the socket to
  become readable again. A packet that is whole in the buffer is cut out at once
  (paho's own reading, byte by byte, takes the rest), and paho's debug line for every
  packet is formatted only when its logger would write it: with `acknowledge` (below),
  the receive path's interpreter time fell by about a third.

Only paho-mqtt 2.2.x is changed, the version these were checked against
(`tests/contract/test_mqtt_receive.py` runs paho's own and these side by side).
"""

from __future__ import annotations

import logging
import struct
import threading
from collections.abc import Callable, Sequence
from typing import Any

import aiomqtt
import paho.mqtt.client as paho_client
from paho.mqtt.enums import LogLevel, MQTTErrorCode
from paho.mqtt.exception import MalformedPacket

from contract.mqtt_properties import paho_checked

log = logging.getLogger(__name__)

_original: dict[str, Any] = {
    "info_init": paho_client.MQTTMessageInfo.__init__,
    "handle_on_message": paho_client.Client._handle_on_message,
    "sock_recv": paho_client.Client._sock_recv,
    "loop_read": paho_client.Client.loop_read,
    "packet_read": paho_client.Client._packet_read,
    "easy_log": paho_client.Client._easy_log,
}
#: Bytes asked of the socket at once.
READ_SIZE = 65_536
_creating = threading.Lock()


class _LazyCondition:
    """A `threading.Condition` made when first used: the four uses paho makes of it."""

    __slots__ = ("_condition",)

    def __init__(self) -> None:
        self._condition: threading.Condition | None = None

    def _get(self) -> threading.Condition:
        condition = self._condition
        if condition is None:
            with _creating:  # two threads' first use gets one condition
                if self._condition is None:
                    self._condition = threading.Condition()
                condition = self._condition
        return condition

    def __enter__(self) -> bool:
        return self._get().__enter__()

    def __exit__(self, *exc: Any) -> None:
        self._get().__exit__(*exc)

    def wait(self, timeout: float | None = None) -> bool:
        return self._get().wait(timeout)

    def notify(self, n: int = 1) -> None:
        self._get().notify(n)

    def notify_all(self) -> None:
        self._get().notify_all()


def _info_init(self: paho_client.MQTTMessageInfo, mid: int) -> None:
    self.mid = mid
    self._published = False
    self._condition = _LazyCondition()  # type: ignore[assignment]
    self.rc = MQTTErrorCode.MQTT_ERR_SUCCESS
    self._iterpos = 0


def _handle_on_message(self: paho_client.Client, message: paho_client.MQTTMessage) -> None:
    if self._on_message_filtered._root._children:  # per-topic callbacks: paho's own way
        _original["handle_on_message"](self, message)
        return
    on_message = self.on_message
    if on_message is None:
        return
    with self._in_callback_mutex:
        try:
            on_message(self, self._userdata, message)
        except Exception as err:
            self._easy_log(paho_client.MQTT_LOG_ERR, "Caught exception in on_message: %s", err)
            if not self.suppress_exceptions:
                raise


class _ReadBuffer:
    """Bytes read from one socket and not yet handed to paho."""

    __slots__ = ("data", "pos", "sock")

    def __init__(self, sock: object) -> None:
        self.sock = sock
        self.data = b""
        self.pos = 0


def _sock_recv(self: paho_client.Client, bufsize: int) -> bytes:
    # paho's own `_sock_recv` fills the buffer: its errors (would block, TLS, a closed
    # socket) reach paho as they always did; b"" (the peer closed) only once it is empty.
    buffer: _ReadBuffer | None = self.__dict__.get("_bw_read")
    if buffer is None or buffer.sock is not self._sock:
        buffer = self._bw_read = _ReadBuffer(self._sock)  # type: ignore[attr-defined]
    if buffer.pos >= len(buffer.data):
        data: bytes = _original["sock_recv"](self, max(bufsize, READ_SIZE))
        if not data:
            return data
        buffer.data, buffer.pos = data, 0
    start = buffer.pos
    buffer.pos = start + bufsize
    return buffer.data[start : buffer.pos]


def _empty_packet() -> Any:
    """paho's `_in_packet` between packets (as `_packet_read` resets it)."""
    return {
        "command": 0,
        "have_remaining": 0,
        "remaining_count": [],
        "remaining_mult": 1,
        "remaining_length": 0,
        "packet": bytearray(b""),
        "to_process": 0,
        "pos": 0,
    }


def _packet_read(self: paho_client.Client) -> MQTTErrorCode:
    # A packet that is whole in the buffer is taken at once; anything else (a packet
    # begun, cut off at the buffer's end, an empty buffer, a malformed length) goes to
    # paho's own byte-by-byte reading, which reads from the same buffer.
    buffer: _ReadBuffer | None = self.__dict__.get("_bw_read")
    if self._in_packet["command"] != 0 or buffer is None or buffer.sock is not self._sock:
        return _original["packet_read"](self)  # type: ignore[no-any-return]
    data, start = buffer.data, buffer.pos
    end = len(data)
    index, length, multiplier = start + 1, 0, 1
    while True:  # the remaining length: one to four bytes, seven bits each
        if index >= end or index - start > 4:
            return _original["packet_read"](self)  # type: ignore[no-any-return]
        byte = data[index]
        length += (byte & 127) * multiplier
        multiplier *= 128
        index += 1
        if not byte & 128:
            break
    if index + length > end:
        return _original["packet_read"](self)  # type: ignore[no-any-return]
    self._in_packet = {
        "command": data[start],
        "have_remaining": 1,
        "remaining_count": list(data[start + 1 : index]),
        "remaining_mult": multiplier,
        "remaining_length": length,
        "packet": bytearray(data[index : index + length]),
        "to_process": 0,
        "pos": 0,
    }
    buffer.pos = index + length
    try:
        rc: MQTTErrorCode = self._packet_handle()
    except MalformedPacket as exc:
        self._easy_log(paho_client.MQTT_LOG_DEBUG, "Received malformed packet: %s", exc)
        rc = MQTTErrorCode.MQTT_ERR_PROTOCOL
    self._in_packet = _empty_packet()
    with self._msgtime_mutex:
        self._last_bytes_received = paho_client.time_func()
    return rc


def _easy_log(self: paho_client.Client, level: LogLevel, fmt: str, *args: Any) -> None:
    # paho formats and passes on a debug line for every packet; asked first whether
    # anyone listens (an `on_log` callback, or its logger at that level).
    logger = self._logger
    if self.on_log is None and (
        logger is None or not logger.isEnabledFor(paho_client.LOGGING_LEVEL[level])
    ):
        return
    _original["easy_log"](self, level, fmt, *args)


def _buffered(self: paho_client.Client) -> bool:
    buffer: _ReadBuffer | None = self.__dict__.get("_bw_read")
    return (
        buffer is not None
        and buffer.sock is self._sock
        and self._sock is not None
        and buffer.pos < len(buffer.data)
    )


def _loop_read(self: paho_client.Client, max_packets: int = 1) -> MQTTErrorCode:
    rc: MQTTErrorCode = _original["loop_read"](self, max_packets)
    while rc == MQTTErrorCode.MQTT_ERR_SUCCESS and _buffered(self):
        rc = _original["loop_read"](self, max_packets)
    return rc


def installed() -> bool:
    return paho_client.MQTTMessageInfo.__init__ is _info_init


def install() -> bool:
    """Apply the paho changes (idempotent). False, and paho left as it is, for a paho
    version this module was not checked against."""
    if installed():
        return True
    if not paho_checked("received messages handled as paho handles them"):
        return False
    paho_client.MQTTMessageInfo.__init__ = _info_init  # type: ignore[method-assign]
    paho_client.Client._handle_on_message = _handle_on_message  # type: ignore[method-assign]
    paho_client.Client._sock_recv = _sock_recv  # type: ignore[method-assign]
    paho_client.Client.loop_read = _loop_read  # type: ignore[method-assign]
    paho_client.Client._packet_read = _packet_read  # type: ignore[method-assign]
    paho_client.Client._easy_log = _easy_log  # type: ignore[method-assign]
    return True


def uninstall() -> None:
    """paho's own methods again (for the comparison test)."""
    paho_client.MQTTMessageInfo.__init__ = _original["info_init"]  # type: ignore[method-assign]
    paho_client.Client._handle_on_message = _original["handle_on_message"]  # type: ignore[method-assign]
    paho_client.Client._sock_recv = _original["sock_recv"]  # type: ignore[method-assign]
    paho_client.Client.loop_read = _original["loop_read"]  # type: ignore[method-assign]
    paho_client.Client._packet_read = _original["packet_read"]  # type: ignore[method-assign]
    paho_client.Client._easy_log = _original["easy_log"]  # type: ignore[method-assign]


#: One PUBACK (MQTT 3.1.1 §3.4 and MQTT 5 §3.4.2.1, Success without properties: remaining
#: length 2) as a big-endian 32-bit word: type 4 with flags 0, length 2, packet id.
_PUBACK_WORD = (paho_client.PUBACK << 24) | (2 << 16)


def acknowledge(client: paho_client.Client, received: Sequence[tuple[int, int]]) -> None:
    """Acknowledge received messages, `(mid, qos)` each, for a client with manual
    acknowledgement (`manual_ack_set(True)`), in the order given.

    paho's `ack` builds, queues and writes each PUBACK on its own: a system call per
    message. Here the QoS 1 PUBACKs of a batch are one buffer, queued as one packet and
    written at once; a QoS 2 message gets paho's own PUBCOMP. Not installed (a paho version
    not checked), or without manual acknowledgement, it is paho's `ack` for each."""
    if not installed() or not client._manual_ack:
        for mid, qos in received:
            client.ack(mid, qos)
        return
    mids = [mid for mid, qos in received if qos == 1]
    if mids:
        packet = struct.pack(f"!{len(mids)}I", *[_PUBACK_WORD | mid for mid in mids])
        client._packet_queue(paho_client.PUBACK, packet, 0, 1)
    for mid, qos in received:
        if qos == 2:
            client.ack(mid, qos)


Received = Callable[[paho_client.MQTTMessage], None]


def deliver_to(client: aiomqtt.Client, callback: Received) -> None:
    """Hand every message `client` receives to `callback` — paho's `MQTTMessage`
    (`topic`, `payload`, `mid`, `qos`) — in the event loop's thread, as it is parsed.

    Call it before connecting. `client.messages` then yields nothing; iterate it only to
    learn that the connection ended (it raises `aiomqtt.MqttError`). `callback` must
    not raise: an exception escapes into paho's read loop, as one from paho's own
    `on_message` would."""

    def on_message(_paho: paho_client.Client, _userdata: Any, message: Any) -> None:
        callback(message)

    client._client.on_message = on_message

"""JT/T 808 framing: 0x7E delimiters, 0x7D escaping, the XOR check code.

On the wire a frame is ``7E <escaped(header + body + check)> 7E`` where escaping
turns ``7E`` into ``7D 02`` and ``7D`` into ``7D 01`` (JT/T 808-2013 §4.4.1,
JT/T 808-2019 §4.5.1). The check code is the XOR of every header and body byte.

Un-escaping is a byte state machine: replacing ``7D 02`` then ``7D 01`` with
chained ``bytes.replace`` turns ``7D 01 02`` (an escaped ``7D`` then ``02``)
into ``7E`` (TRAPS.md).
"""

from __future__ import annotations

from collections.abc import Iterator

from devices.errors import FrameError

FLAG = 0x7E
ESCAPE = 0x7D
_ESCAPED = {0x01: ESCAPE, 0x02: FLAG}

#: Longest un-escaped content a splitter will buffer before it gives up on a frame:
#: a 2019 header with sub-packages (21 bytes) + the largest body (1023) + check code,
#: every byte escaped, with room to spare.
MAX_WIRE_FRAME = 4096


def xor_check(data: bytes) -> int:
    """The JT/T 808 check code: XOR of every byte.

    Folded as one big integer (halves XOR-ed together) rather than byte by byte.
    """
    size = 1
    while size < len(data):
        size *= 2
    value = int.from_bytes(data, "big")
    while size > 1:
        size //= 2
        bits = 8 * size
        value = (value >> bits) ^ (value & ((1 << bits) - 1))
    return value


def escape(content: bytes) -> bytes:
    """Escape header+body+check for the wire (no delimiters)."""
    if ESCAPE not in content and FLAG not in content:
        return bytes(content)
    out = bytearray()
    for byte in content:
        if byte == FLAG:
            out += b"\x7d\x02"
        elif byte == ESCAPE:
            out += b"\x7d\x01"
        else:
            out.append(byte)
    return bytes(out)


def unescape(wire: bytes, raw: bytes | None = None) -> bytes:
    """Undo `escape` with a byte state machine; a bad escape or a bare 0x7E is a FrameError."""
    if ESCAPE not in wire and FLAG not in wire:
        return bytes(wire)
    out = bytearray()
    pending_escape = False
    for offset, byte in enumerate(wire):
        if pending_escape:
            original = _ESCAPED.get(byte)
            if original is None:
                raise FrameError(
                    f"bad escape sequence 7D {byte:02X} at content offset {offset - 1}"
                    " (only 7D 01 and 7D 02 are defined)",
                    raw if raw is not None else wire,
                )
            out.append(original)
            pending_escape = False
        elif byte == ESCAPE:
            pending_escape = True
        elif byte == FLAG:
            raise FrameError(
                f"unescaped 0x7E inside the frame at content offset {offset}",
                raw if raw is not None else wire,
            )
        else:
            out.append(byte)
    if pending_escape:
        raise FrameError(
            "frame content ends in the middle of an escape (a lone 7D before the closing 7E)",
            raw if raw is not None else wire,
        )
    return bytes(out)


def wrap(content: bytes) -> bytes:
    """Append the check code to header+body, escape, and add both delimiters."""
    return bytes([FLAG]) + escape(content + bytes([xor_check(content)])) + bytes([FLAG])


def unwrap(raw: bytes) -> tuple[bytes, int, int]:
    """Strip delimiters and escaping: (header+body, check code received, check code computed).

    Raises FrameError saying precisely what is wrong with the outer form.
    """
    if not raw:
        raise FrameError("empty input: not a JT/T 808 frame", raw)
    if raw[0] != FLAG:
        raise FrameError(
            f"not a JT/T 808 frame: starts with 0x{raw[0]:02X}{_printable(raw[0])},"
            " not the 0x7E flag",
            raw,
        )
    if len(raw) < 2 or raw[-1] != FLAG:
        raise FrameError("not a complete JT/T 808 frame: no closing 0x7E flag", raw)
    content = unescape(raw[1:-1], raw)
    if not content:
        raise FrameError("empty frame: two 0x7E flags with nothing between them", raw)
    body, received = content[:-1], content[-1]
    return body, received, xor_check(body)


def _printable(byte: int) -> str:
    return f" {chr(byte)!r}" if 0x20 <= byte < 0x7F else ""


class FrameSplitter:
    """Cut a byte stream into candidate frames (``7E … 7E``), resynchronising after garbage.

    Every 0x7E ends the frame being collected; bytes before the first flag and runs
    of flags are dropped. A garbage run between two frames comes out as one bad
    candidate (its decoder rejects it) and the next real frame is kept whole.
    """

    def __init__(self, max_frame: int = MAX_WIRE_FRAME) -> None:
        self._buffer = bytearray()
        self._in_frame = False
        self._max_frame = max_frame
        self.discarded_bytes = 0

    def feed(self, data: bytes) -> Iterator[bytes]:
        """Yield every complete candidate frame (delimiters included) found so far."""
        for byte in data:
            if byte == FLAG:
                if self._in_frame and self._buffer:
                    frame = bytes([FLAG]) + bytes(self._buffer) + bytes([FLAG])
                    self._buffer.clear()
                    yield frame
                self._in_frame = True
            elif self._in_frame:
                self._buffer.append(byte)
                if len(self._buffer) > self._max_frame:
                    self.discarded_bytes += len(self._buffer)
                    self._buffer.clear()
                    self._in_frame = False
            else:
                self.discarded_bytes += 1

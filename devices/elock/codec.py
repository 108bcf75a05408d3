"""JT/T 808 codec: whole frames ⇄ typed messages. Pure: no I/O, no clocks.

    decode(raw, strict=True) -> Message       # raises FrameError / ChecksumError
    encode(header, body) -> bytes              # a complete frame, 7E … 7E

The pieces live in small modules: `framing` (flags, escaping, check code, stream
splitting), `header`, `bodies`, `tlv` (location additional items), `block` (the
BondWatch lock block) and `profile` (its constants).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from devices.elock.bodies import Body, RawBody, decode_body
from devices.elock.framing import unwrap, wrap
from devices.elock.header import Header, decode_header
from devices.errors import ChecksumError, FrameError

__all__ = ["Message", "decode", "encode"]


@dataclass(frozen=True)
class Message:
    """A decoded frame. `checksum_ok` is False only from a lenient decode."""

    header: Header
    body: Body
    checksum_ok: bool = True

    @property
    def msg_id(self) -> int:
        return self.header.msg_id


def decode(raw: bytes, *, strict: bool = True) -> Message:
    """Decode one frame (with its 0x7E flags).

    `strict` raises `ChecksumError` on a wrong check code; lenient mode decodes the
    frame anyway and returns `checksum_ok=False` (some real devices send wrong
    codes). Every other defect raises `FrameError` with the reason; nothing else
    escapes.
    """
    content, received, computed = unwrap(raw)
    checksum_ok = received == computed
    if strict and not checksum_ok:
        raise ChecksumError(
            f"check code 0x{received:02X} does not match the computed 0x{computed:02X}", raw
        )
    try:
        header, body = decode_header(content, raw)
    except FrameError as err:
        raise FrameError(_with_hints(str(err), raw, content), raw) from None
    if header.encryption:
        return Message(header, RawBody(header.msg_id, body, "encrypted body"), checksum_ok)
    if header.is_subpackage:
        why = f"sub-package {header.packet_index} of {header.packet_total}"
        return Message(header, RawBody(header.msg_id, body, why), checksum_ok)
    try:
        decoded = decode_body(header.msg_id, body, header.version)
    except FrameError as err:
        raise FrameError(f"message 0x{header.msg_id:04X}: {err}", raw) from None
    return Message(header, decoded, checksum_ok)


def _with_hints(reason: str, raw: bytes, content: bytes) -> str:
    """Add what a length mismatch most likely means, when the raw bytes say so."""
    if "body length" not in reason:
        return reason
    wire = raw[1:-1]
    if 0x7D in wire:
        try:
            header, _ = decode_header(wire[:-1])
        except FrameError:
            pass
        else:
            return (
                f"{reason}; it would fit if its 0x7D bytes were data, not escapes"
                f" (the sender does not escape 0x7D; serial {header.serial})"
            )
    try:
        decode_header(content + b"\x00")
    except FrameError:
        return reason
    return f"{reason}; it would fit if the frame had no check code (vendor framing)"


def encode(header: Header, body: Body) -> bytes:
    """A complete frame for `body` under `header` (its length and version fields set here)."""
    data = body.encode(header.version)
    if header.msg_id != body.MSG_ID:
        header = replace(header, msg_id=body.MSG_ID)
    return wrap(header.encode(len(data)) + data)

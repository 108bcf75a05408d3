"""The JT/T 808 message header, in its 2013 and 2019 forms.

| field | 2013 | 2019 |
|---|---|---|
| message id | WORD | WORD |
| properties | WORD: bits 0–9 body length, 10–12 encryption, 13 sub-package | bit 14 set |
| protocol version | — | BYTE (1 for JT/T 808-2019) |
| terminal phone number | BCD[6] | BCD[10] |
| serial number | WORD | WORD |
| sub-package total, index | WORD, WORD when bit 13 is set | same |

Multi-byte integers are big-endian (JT/T 808 §4.2).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from devices.errors import FrameError

BODY_LENGTH_MASK = 0x03FF
ENCRYPTION_SHIFT = 10
ENCRYPTION_MASK = 0x07
SUBPACKAGE_BIT = 1 << 13
VERSION_BIT = 1 << 14
RESERVED_BIT = 1 << 15

PHONE_BYTES_2013 = 6
PHONE_BYTES_2019 = 10
MAX_BODY_LENGTH = BODY_LENGTH_MASK


def bcd_to_str(data: bytes) -> str:
    """BCD digits as a string. Nibbles above 9 (seen on real devices) come out as hex digits."""
    return data.hex()


def str_to_bcd(digits: str, size: int) -> bytes:
    """Left-pad `digits` with zeros to `size` bytes of BCD; a longer number is an error."""
    if len(digits) > size * 2:
        raise ValueError(f"number {digits!r} does not fit in {size} BCD bytes")
    padded = digits.rjust(size * 2, "0")
    try:
        return bytes.fromhex(padded)
    except ValueError as err:
        raise ValueError(f"number {digits!r} is not BCD digits") from err


@dataclass(frozen=True)
class Header:
    """A decoded header. `version` is None for the 2013 form, the protocol version for 2019."""

    msg_id: int
    phone: str
    serial: int
    body_length: int = 0
    encryption: int = 0
    version: int | None = None
    packet_total: int | None = None
    packet_index: int | None = None
    reserved_bit: bool = False

    @property
    def is_2019(self) -> bool:
        return self.version is not None

    @property
    def is_subpackage(self) -> bool:
        return self.packet_total is not None

    @property
    def size(self) -> int:
        """Bytes this header takes on the wire (before escaping)."""
        base = 17 if self.is_2019 else 12
        return base + (4 if self.is_subpackage else 0)

    def encode(self, body_length: int) -> bytes:
        """The header bytes for a body of `body_length` bytes."""
        if not 0 <= body_length <= MAX_BODY_LENGTH:
            raise ValueError(f"body of {body_length} bytes does not fit the 10-bit length field")
        if not 0 <= self.msg_id <= 0xFFFF or not 0 <= self.serial <= 0xFFFF:
            raise ValueError("message id and serial number are 16-bit")
        props = body_length | ((self.encryption & ENCRYPTION_MASK) << ENCRYPTION_SHIFT)
        if self.is_subpackage:
            props |= SUBPACKAGE_BIT
        if self.reserved_bit:
            props |= RESERVED_BIT
        out = bytearray(struct.pack(">HH", self.msg_id, props))
        if self.version is not None:
            out[2] |= VERSION_BIT >> 8
            out.append(self.version & 0xFF)
            out += str_to_bcd(self.phone, PHONE_BYTES_2019)
        else:
            out += str_to_bcd(self.phone, PHONE_BYTES_2013)
        out += struct.pack(">H", self.serial)
        if self.is_subpackage:
            out += struct.pack(">HH", self.packet_total or 0, self.packet_index or 0)
        return bytes(out)


def decode_header(content: bytes, raw: bytes = b"") -> tuple[Header, bytes]:
    """Split un-escaped header+body into (Header, body); the length field must match."""
    if len(content) < 4:
        raise FrameError(
            f"frame too short for a JT/T 808 header: {len(content)} bytes before the check code",
            raw,
        )
    msg_id, props = struct.unpack_from(">HH", content, 0)
    body_length = props & BODY_LENGTH_MASK
    is_2019 = bool(props & VERSION_BIT)
    is_sub = bool(props & SUBPACKAGE_BIT)
    offset = 4
    version: int | None = None
    needed = 4 + 1 + PHONE_BYTES_2019 + 2 if is_2019 else 4 + PHONE_BYTES_2013 + 2
    if is_sub:
        needed += 4
    form = "2019" if is_2019 else "2013"
    if len(content) < needed:
        raise FrameError(
            f"message 0x{msg_id:04X}: frame too short for a JT/T 808-{form} header"
            f"{' with sub-package fields' if is_sub else ''}: {len(content)} of {needed} bytes",
            raw,
        )
    if is_2019:
        version = content[offset]
        offset += 1
        phone = bcd_to_str(content[offset : offset + PHONE_BYTES_2019])
        offset += PHONE_BYTES_2019
    else:
        phone = bcd_to_str(content[offset : offset + PHONE_BYTES_2013])
        offset += PHONE_BYTES_2013
    (serial,) = struct.unpack_from(">H", content, offset)
    offset += 2
    packet_total: int | None = None
    packet_index: int | None = None
    if is_sub:
        packet_total, packet_index = struct.unpack_from(">HH", content, offset)
        offset += 4
    body = content[offset:]
    if len(body) != body_length:
        raise FrameError(
            f"message 0x{msg_id:04X}: body length field says {body_length} bytes"
            f" but the JT/T 808-{form} frame holds {len(body)}",
            raw,
        )
    header = Header(
        msg_id=msg_id,
        phone=phone,
        serial=serial,
        body_length=body_length,
        encryption=(props >> ENCRYPTION_SHIFT) & ENCRYPTION_MASK,
        version=version,
        packet_total=packet_total,
        packet_index=packet_index,
        reserved_bit=bool(props & RESERVED_BIT),
    )
    return header, body

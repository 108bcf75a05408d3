"""Binary frames receivers mix into their NMEA output, built as the receivers build them.

- CASIC (Zhongke Micro AT6558/ATGM336H, common in Chinese modules): header `BA CE`,
  payload length (U2 little-endian), class, id, payload (a multiple of 4 bytes), and a
  4-byte little-endian checksum: (id << 24) + (class << 16) + length, plus the payload
  summed as little-endian 32-bit words, modulo 2**32. (The CASIC protocol specification
  writes class << 24 + id << 16; receivers put the id in the top byte, which is what
  is built here. The decoder skips the frame either way.)
- u-blox UBX: sync `B5 62`, class, id, payload length (U2 little-endian), payload, and
  the 8-bit Fletcher checksum CK_A, CK_B over class..payload.
"""

from __future__ import annotations

import struct


def casic_frame(cls: int, msg_id: int, payload: bytes) -> bytes:
    if len(payload) % 4:
        raise ValueError("a CASIC payload is a multiple of 4 bytes")
    checksum = (msg_id << 24) + (cls << 16) + len(payload)
    for (word,) in struct.iter_unpack("<I", payload):
        checksum += word
    header = b"\xba\xce" + struct.pack("<HBB", len(payload), cls, msg_id)
    return header + payload + struct.pack("<I", checksum & 0xFFFFFFFF)


def casic_nav_pv(lat: float, lon: float, speed_mps: float, heading: float) -> bytes:
    """A CASIC NAV-PV (class 0x01, id 0x03, 80 bytes): position and velocity."""
    payload = struct.pack(
        "<IBBBBBBBBfddfffffffffff",
        123456,  # runTime, ms
        7,  # posValid: 3D
        7,  # velValid: 3D
        0b011,  # system: GPS + BDS
        14,  # numSV
        8,  # numSVGPS
        6,  # numSVBDS
        0,  # numSVGLN
        0,  # reserved
        1.6,  # pDop
        lon,
        lat,
        35.2,  # height, m
        -3.0,  # sepGeoid, m
        4.0,  # hAcc, m²
        9.0,  # vAcc, m²
        0.0,  # velN
        speed_mps,  # velE
        0.0,  # velU
        speed_mps,  # speed3D
        speed_mps,  # speed2D
        heading,
        0.01,  # sAcc
    )
    payload += struct.pack("<f", 0.5)  # cAcc, deg²
    assert len(payload) == 80
    return casic_frame(0x01, 0x03, payload)


def casic_text_payload(text: bytes) -> bytes:
    """A payload holding ASCII text (as MON-VER does), padded to a multiple of 4."""
    return text + b"\x00" * (-len(text) % 4)


def ubx_frame(cls: int, msg_id: int, payload: bytes) -> bytes:
    body = struct.pack("<BBH", cls, msg_id, len(payload)) + payload
    ck_a = ck_b = 0
    for byte in body:
        ck_a = (ck_a + byte) & 0xFF
        ck_b = (ck_b + ck_a) & 0xFF
    return b"\xb5\x62" + body + bytes((ck_a, ck_b))


def ubx_header(cls: int, msg_id: int, claimed_length: int) -> bytes:
    """The 6 bytes that start a UBX packet, claiming `claimed_length` payload bytes
    (a packet torn off, or a length that lies)."""
    return b"\xb5\x62" + struct.pack("<BBH", cls, msg_id, claimed_length)


def ubx_mon_rxbuf(pending: int, usage: int) -> bytes:
    """UBX-MON-RXBUF (0x0A 0x07, 24 bytes): pending bytes (U2) and usage, peak usage
    (U1, %) for each of the 6 ports."""
    payload = struct.pack("<6H", *[pending] * 6) + bytes([usage] * 6) + bytes([usage + 3] * 6)
    return ubx_frame(0x0A, 0x07, payload)


def ubx_mon_txbuf(pending: int, usage: int) -> bytes:
    """UBX-MON-TXBUF (0x0A 0x08, 28 bytes): as RXBUF plus total usage, total peak
    usage, error flags and a reserved byte."""
    payload = struct.pack("<6H", *[pending] * 6) + bytes([usage] * 6) + bytes([usage + 5] * 6)
    payload += bytes([usage, usage + 5, 0x00, 0x00])
    return ubx_frame(0x0A, 0x08, payload)


def ubx_sec_uniqid(chip_id: bytes) -> bytes:
    """UBX-SEC-UNIQID (0x27 0x03, 9 bytes): version 1, 3 reserved bytes, a 5-byte chip id."""
    if len(chip_id) != 5:
        raise ValueError("a u-blox chip id is 5 bytes")
    return ubx_frame(0x27, 0x03, b"\x01\x00\x00\x00" + chip_id)


def rtcm3_frame(payload: bytes) -> bytes:
    """An RTCM 3 frame: preamble `D3`, 6 reserved bits and a 10-bit length, the payload
    and a 3-byte CRC-24Q (not computed here: the decoder never checks it)."""
    if len(payload) > 1023:
        raise ValueError("an RTCM 3 payload is at most 1023 bytes")
    return b"\xd3" + struct.pack(">H", len(payload)) + payload + b"\x00\x00\x00"


def sirf_frame(payload: bytes) -> bytes:
    """A SiRF binary frame: `A0 A2`, length (U2 big-endian), payload, 15-bit checksum
    (sum of the payload bytes), `B0 B3`."""
    checksum = sum(payload) & 0x7FFF
    return (
        b"\xa0\xa2"
        + struct.pack(">H", len(payload))
        + payload
        + struct.pack(">H", checksum)
        + b"\xb0\xb3"
    )

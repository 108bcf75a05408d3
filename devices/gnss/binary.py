"""Binary packets in an NMEA stream: telling a u-blox UBX packet from noise (pure).

The decoder skips every binary byte; it only needs to know whether the receiver
sends UBX, because gpsd then runs its u-blox driver, which reports differently at
start-up (docs/gnss.md, "How epochs become fixes", rule 3). The two sync bytes alone
say little: `B5 62` turns up in any binary data (a CASIC receiver's floats, line noise
at a wrong baud rate) about once in 65536 byte pairs. gpsd's packet reader only takes
a UBX packet whose checksum is right, and so does `UbxFinder`:

    B5 62 | class | id | payload length (U2 little-endian) | payload | CK_A CK_B

with CK_A/CK_B the 8-bit Fletcher checksum over class..payload (u-blox protocol
specification, "UBX checksum").
"""

from __future__ import annotations

UBX_SYNC = b"\xb5\x62"
#: The longest run of binary bytes kept between two sentences, and so the longest UBX
#: packet recognised (real ones mixed into NMEA are far shorter: NAV-PVT 100 bytes,
#: NAV-SAT 8 + 12 per satellite).
MAX_RUN = 8192


def ubx_checksum(body: bytes | bytearray) -> bytes:
    """CK_A, CK_B of a UBX packet's class, id, length and payload."""
    ck_a = ck_b = 0
    for byte in body:
        ck_a = (ck_a + byte) & 0xFF
        ck_b = (ck_b + ck_a) & 0xFF
    return bytes((ck_a, ck_b))


class UbxFinder:
    """Finds a complete UBX packet with a valid checksum in the binary bytes between
    two sentences, however they are chunked. `feed()` the bytes of the run as they come
    and `end_run()` when a sentence ends it."""

    def __init__(self) -> None:
        self._run = bytearray()
        self._scan = 0  # where the next candidate sync may start

    def end_run(self) -> None:
        self._run.clear()
        self._scan = 0

    def feed(self, data: bytes | bytearray) -> bool:
        """Add bytes to the run; True once it holds a valid UBX packet."""
        run = self._run
        run += data
        if len(run) > MAX_RUN:
            drop = len(run) - MAX_RUN
            del run[:drop]
            self._scan = max(0, self._scan - drop)
        return self._search()

    def _search(self) -> bool:
        run = self._run
        i = run.find(UBX_SYNC, self._scan)
        while i >= 0:
            if i + 6 > len(run):
                self._scan = i  # the header is not complete yet
                return False
            end = i + 8 + (run[i + 4] | run[i + 5] << 8)
            if end > len(run) and end - i <= MAX_RUN:
                self._scan = i  # wait for the rest of this packet
                return False
            if end <= len(run) and ubx_checksum(run[i + 2 : end - 2]) == run[end - 2 : end]:
                return True
            i = run.find(UBX_SYNC, i + 1)
        self._scan = max(len(run) - 1, 0)  # a sync may straddle the next chunk
        return False

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
        if not run and UBX_SYNC[0] not in data:
            return False  # nothing here can start a packet (the CR LF between sentences)
        run += data
        if len(run) > MAX_RUN:
            drop = len(run) - MAX_RUN
            del run[:drop]
            self._scan = max(0, self._scan - drop)
        return self._search()

    def _search(self) -> bool:
        """Look at every sync in the run: a packet whose claimed length runs past the
        bytes so far is waited for, but does not hide a whole packet after it (a
        length that lies, or a packet torn off, must not)."""
        run = self._run
        waiting = -1
        i = run.find(UBX_SYNC, self._scan)
        while i >= 0:
            # the packet's end, past the run while its header is incomplete
            end = len(run) + 1 if i + 6 > len(run) else i + 8 + (run[i + 4] | run[i + 5] << 8)
            if end > len(run):
                if waiting < 0 and end - i <= MAX_RUN:
                    waiting = i  # wait for the rest of this packet
            elif ubx_checksum(run[i + 2 : end - 2]) == run[end - 2 : end]:
                return True
            i = run.find(UBX_SYNC, i + 1)
        # the next search starts at the first packet still waited for, else where a
        # sync may straddle the next chunk
        self._scan = waiting if waiting >= 0 else max(len(run) - 1, 0)
        return False

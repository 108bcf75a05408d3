"""Just enough of AIS (`!AIVDM`/`!AIVDO`) to reproduce how gpsd reports around it.

A GNSS receiver does not send AIS, but a marine feed may mix the two (the
`ais-nmea.log` reference log). gpsd, the reference daemon, holds what changed since
its last report and sends it with the next one; when the AIS message it last decoded
is one half of a class B static report (message 24 part A, or a part B that matched
no part A) and its watcher did not ask for split halves, gpsd drops that whole report,
position included (gpsd.c, `all_reports`). This module tells the decoder when that
is the case. It decodes no AIS content.

Public facts used (ITU-R M.1371, and the AIVDM/AIVDO format as described in gpsd's
"AIVDM/AIVDO protocol decoding"): fields are fragment count, fragment number,
sequential message id, radio channel, payload, fill bits; the payload is 6-bit
ASCII armoured (character code - 48, minus 8 more above 40); the message type is the
first 6 bits, the MMSI bits 8-37; message 24 carries its part number in bits 38-39
(0 = part A, 160-168 bits; 1 = part B, 168 bits). gpsd pairs a part B with a part A
of the same MMSI kept in a queue of 8 per radio channel.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: Part A messages of type 24 that gpsd keeps per channel to pair with a part B.
TYPE24_QUEUE = 8


@dataclass
class _Channel:
    payload: list[str] = field(default_factory=list)
    expected: int = 0
    fill: int = 0
    parts_a: list[int] = field(default_factory=list)


def _bits(payload: str, fill: int) -> tuple[int, int] | None:
    """The payload as one integer and its length in bits, or None if not armoured."""
    value = 0
    for char in payload:
        code = ord(char) - 48
        if code > 40:
            code -= 8
        if not 0 <= code <= 63:
            return None
        value = (value << 6) | code
    length = 6 * len(payload) - fill
    if length <= 0:
        return None
    return value >> fill, length


class AisTracker:
    """Follows the AIS messages of a stream: `feed()` one VDM/VDO sentence's fields;
    `pending` says an AIS message was decoded since the last `report()`, `half_24`
    that the latest one is an unpaired half of message 24."""

    def __init__(self) -> None:
        self._channels: dict[str, _Channel] = {}
        self.pending = False
        self.half_24 = False

    def feed(self, fields: tuple[str, ...]) -> None:
        if len(fields) < 6:
            return
        count, number = fields[0].strip(), fields[1].strip()
        if not (count.isdigit() and number.isdigit()):
            return
        total, part = int(count), int(number)
        fill_text = fields[5].strip()
        fill = int(fill_text) if fill_text.isdigit() else 0
        name = "B" if fields[3].strip() in ("B", "2") else "A"
        channel = self._channels.setdefault(name, _Channel())
        if part == 1:
            channel.payload, channel.expected = [], total
        elif part != len(channel.payload) + 1 or total != channel.expected:
            channel.payload, channel.expected = [], 0  # a fragment out of sequence
            return
        channel.payload.append(fields[4].strip())
        if part < total:
            return
        decoded = _bits("".join(channel.payload), fill)
        channel.payload, channel.expected = [], 0
        if decoded is not None:
            self._message(channel, *decoded)

    def _message(self, channel: _Channel, value: int, length: int) -> None:
        def take(start: int, width: int) -> int:
            return (value >> (length - start - width)) & ((1 << width) - 1)

        if length < 40:
            return
        half = False
        if take(0, 6) == 24:
            mmsi, part = take(8, 30), take(38, 2)
            if part == 0 and 160 <= length <= 168:
                channel.parts_a.append(mmsi)
                del channel.parts_a[:-TYPE24_QUEUE]
                half = True
            elif part == 1 and length >= 168:
                half = mmsi not in channel.parts_a
                if not half:
                    channel.parts_a.remove(mmsi)
            else:
                return  # gpsd does not decode it
        self.pending = True
        self.half_24 = half

    def report(self) -> bool:
        """A report is due: whether gpsd sends it (False: dropped for a message-24 half)."""
        dropped = self.pending and self.half_24
        self.pending = False
        return not dropped

"""Serial numbers and answer matching of lock commands: one rule for every platform end.

A platform end (the serial driver `devices.elock.driver`, a JT/T 808 TCP gateway) names
each message it sends with a serial number (WORD) and pairs the lock's answers with its
command by it. A lock keeps its last answers by serial and sends one again for a repeat
of the same command (docs/lock-profile.md, "Commands and acknowledgements"), so a serial
alone does not identify a command: a restarted gateway counting from 0 again would reuse
the serials of commands sent before, and a stale answer would pass for the new one's.
Two rules prevent that:

* `SerialCounter` starts at a random serial on every start and wraps from 0xFFFF to 0.
* An answer is taken only if it names both the serial and what was sent: a terminal
  general response (0x0001) its reply serial and the message id sent (`is_response_to`);
  a BondWatch command result (0x0900) its reply serial and the command code
  (`is_result_of`).
"""

from __future__ import annotations

import secrets
from typing import Final

from devices.elock.block import BondWatchBlock
from devices.elock.bodies import TerminalResponse

#: Serial numbers are WORDs: after 0xFFFF comes 0.
SERIAL_SPACE: Final = 0x10000
#: Result names of the terminal general response 0x0001 (JT/T 808-2019 §8.1).
TERMINAL_RESULTS: Final[dict[int, str]] = {
    0: "ok",
    1: "failed",
    2: "bad message",
    3: "unsupported",
}


class SerialCounter:
    """The serial numbers of one platform end: from `first` (random when None), +1 each,
    wrapping from 0xFFFF to 0."""

    def __init__(self, first: int | None = None) -> None:
        if first is None:
            first = secrets.randbelow(SERIAL_SPACE)
        if not 0 <= first < SERIAL_SPACE:
            raise ValueError(f"a serial number is a WORD (0 to 65535), not {first}")
        self._next = first

    def next(self) -> int:
        """The next serial number."""
        serial = self._next
        self._next = (serial + 1) % SERIAL_SPACE
        return serial


def is_result_of(block: BondWatchBlock, serial: int, command: int) -> bool:
    """Whether `block` (a lock's 0x0900 answer) holds the result of command code `command`
    sent with `serial`."""
    result = block.command_result
    return result is not None and result.reply_serial == serial and result.command == command


def is_response_to(response: TerminalResponse, serial: int, msg_id: int) -> bool:
    """Whether a terminal general response (0x0001) answers message `msg_id` sent with
    `serial`."""
    return response.reply_serial == serial and response.reply_id == msg_id

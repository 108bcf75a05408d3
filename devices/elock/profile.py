"""The BondWatch lock profile: which JT/T 808 messages and items a BondWatch e-lock uses.

See `docs/lock-profile.md` for the prose. In short:

* The lock is a JT/T 808 terminal with its own phone number. It registers (0x0100),
  authenticates (0x0102), sends heartbeats (0x0002) and location reports (0x0200)
  with its own position, and in each report one *BondWatch block*: additional item
  `TLV_BONDWATCH` whose value is ``b"BW"``, a profile version byte and sub-items
  (id BYTE, length BYTE, value) for lock id, state, event, battery, wrong-password
  count and the result of a command. The magic keeps a foreign vendor's use of the
  same custom id (0xE1–0xFF is free for vendors, JT/T 808-2019 table 27) from being
  read as lock state.
* Commands go down as transparent data 0x8900 of type `TRANSPARENT_TYPE` carrying a
  BondWatch block with the command, lock id, trip id, authorisation token or area.
  The lock answers each with transparent data 0x0900 of the same type whose block
  holds `SUB_COMMAND_RESULT` naming the command's serial number and code: that is the
  acknowledgement, matched by both (`devices.elock.exchange`). A repeated command (same
  message id, serial and body) gets the same answer again without being carried out
  twice; another command under a used serial is carried out.
"""

from __future__ import annotations

from typing import Final, Literal

LockState = Literal["sealed", "unsealed", "open", "unknown"]
LockEventName = Literal[
    "status",
    "sealed",
    "unsealed",
    "shackle_opened",
    "rope_cut",
    "shell_tampered",
    "low_battery",
    "wrong_password",
    "unseal_refused_outside_area",
    "motor_stuck",
]
CommandName = Literal["seal", "unseal", "query", "set_area"]
ResultName = Literal["done", "refused", "failed"]

#: The additional item (0x0200) and block magic of the BondWatch profile.
TLV_BONDWATCH: Final = 0xEE
MAGIC: Final = b"BW"
PROFILE_VERSION: Final = 1
#: Transparent-data type (0x0900 / 0x8900) of BondWatch commands and results; 0xF0–0xFF
#: are the user-defined types of JT/T 808-2019 §8.62.
TRANSPARENT_TYPE: Final = 0xF1

# Sub-items of a BondWatch block.
SUB_LOCK_ID: Final = 0x01  # ASCII, 1–32 bytes
SUB_STATE: Final = 0x02  # BYTE, STATE_CODES
SUB_EVENT: Final = 0x03  # BYTE, EVENT_CODES
SUB_BATTERY: Final = 0x04  # BYTE percent, WORD millivolts
SUB_WRONG_PASSWORDS: Final = 0x05  # BYTE, wrong authorisations since the last good one
SUB_COMMAND_RESULT: Final = 0x06  # WORD command serial, BYTE command, BYTE result, BYTE reason
SUB_TRIP_ID: Final = 0x07  # ASCII, the trip the lock is sealed for
SUB_COMMAND: Final = 0x08  # BYTE, COMMAND_CODES
SUB_TOKEN: Final = 0x09  # a seal/unseal/set_area token (devices.elock.authorisation)
SUB_AREA: Final = 0x0A  # DWORD lat ×10⁶ (signed), DWORD lon ×10⁶ (signed), DWORD radius m
SUB_REPORT_COUNTER: Final = 0x0B  # DWORD, one more for every report (devices.elock.report_mac)
SUB_REPORT_MAC: Final = 0x0C  # REPORT_MAC_BYTES, the report's MAC (devices.elock.report_mac)
#: Length of a report MAC: HMAC-SHA256 truncated to 128 bits.
REPORT_MAC_BYTES: Final = 16

STATE_CODES: Final[dict[LockState, int]] = {"unknown": 0, "sealed": 1, "unsealed": 2, "open": 3}
EVENT_CODES: Final[dict[LockEventName, int]] = {
    "status": 0,
    "sealed": 1,
    "unsealed": 2,
    "shackle_opened": 3,
    "rope_cut": 4,
    "shell_tampered": 5,
    "low_battery": 6,
    "wrong_password": 7,
    "unseal_refused_outside_area": 8,
    "motor_stuck": 9,
}
COMMAND_CODES: Final[dict[CommandName, int]] = {"seal": 1, "unseal": 2, "query": 3, "set_area": 4}
RESULT_CODES: Final[dict[ResultName, int]] = {"done": 0, "refused": 1, "failed": 2}
#: Why a command was refused or failed.
REASON_CODES: Final[dict[str, int]] = {
    "": 0,
    "bad_token": 1,
    "token_expired": 2,
    "outside_area": 3,
    "motor_stuck": 4,
    "not_sealed": 5,
    "already_sealed": 6,
    "shackle_open": 7,
    "wrong_trip": 8,
    "wrong_lock": 9,
    "no_position": 10,
    "locked_out": 11,
    "bad_command": 12,
    "no_area": 13,
    "token_reused": 14,
}

STATE_BY_CODE: Final[dict[int, LockState]] = {v: k for k, v in STATE_CODES.items()}
EVENT_BY_CODE: Final[dict[int, LockEventName]] = {v: k for k, v in EVENT_CODES.items()}
COMMAND_BY_CODE: Final[dict[int, CommandName]] = {v: k for k, v in COMMAND_CODES.items()}
RESULT_BY_CODE: Final[dict[int, ResultName]] = {v: k for k, v in RESULT_CODES.items()}
REASON_BY_CODE: Final[dict[int, str]] = {v: k for k, v in REASON_CODES.items()}

#: Battery percentage at and under which a lock raises `low_battery` (once per crossing).
LOW_BATTERY_PCT: Final = 20

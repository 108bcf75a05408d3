"""The e-lock's state machine, free of I/O: commands and faults in, answers and events out.

States follow the BondWatch lock profile: `sealed` (shackle closed and armed),
`unsealed` (disarmed by an authorised command), `open` (shackle open or rope cut).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime

from devices.elock import profile
from devices.elock.authorisation import check_unseal_token
from devices.elock.block import Area, BondWatchBlock, CommandResult

EARTH_RADIUS_M = 6_371_008.8
ANSWER_CACHE = 32


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance (haversine), metres."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


Outcome = tuple[BondWatchBlock, list[profile.LockEventName]]


@dataclass
class LockFirmware:
    lock_id: str
    secret: bytes
    state: profile.LockState = "unsealed"
    shackle_closed: bool = True
    trip_id: str | None = None
    battery_pct: float = 100.0
    wrong_passwords: int = 0
    lat: float | None = None
    lon: float | None = None
    area: Area | None = None
    motor_stuck: bool = False
    low_battery_raised: bool = False
    answers: OrderedDict[int, BondWatchBlock] = field(default_factory=OrderedDict)

    # --- reports -----------------------------------------------------------------------

    @property
    def battery_mv(self) -> int:
        return round(3300 + 9 * self.battery_pct)

    def block(self, event: profile.LockEventName = "status") -> BondWatchBlock:
        """The BondWatch block of a status or event report."""
        return BondWatchBlock(
            lock_id=self.lock_id,
            state=profile.STATE_CODES[self.state],
            event=profile.EVENT_CODES[event],
            battery_pct=max(0, min(100, round(self.battery_pct))),
            battery_mv=self.battery_mv,
            wrong_passwords=self.wrong_passwords,
            trip_id=self.trip_id,
        )

    def drain(self, pct: float) -> list[profile.LockEventName]:
        self.battery_pct = max(0.0, self.battery_pct - pct)
        return self._battery_events()

    def set_battery(self, pct: float) -> list[profile.LockEventName]:
        self.battery_pct = max(0.0, min(100.0, pct))
        return self._battery_events()

    def _battery_events(self) -> list[profile.LockEventName]:
        low = self.battery_pct <= profile.LOW_BATTERY_PCT
        if low and not self.low_battery_raised:
            self.low_battery_raised = True
            return ["low_battery"]
        if not low:
            self.low_battery_raised = False
        return []

    # --- faults ------------------------------------------------------------------------

    def rope_cut(self) -> list[profile.LockEventName]:
        self.shackle_closed = False
        self.state = "open"
        return ["rope_cut"]

    def shell_tampered(self) -> list[profile.LockEventName]:
        return ["shell_tampered"]

    def shackle_opened(self) -> list[profile.LockEventName]:
        self.shackle_closed = False
        was_sealed = self.state == "sealed"
        self.state = "open"
        return ["shackle_opened"] if was_sealed else ["status"]

    def shackle_closed_again(self) -> list[profile.LockEventName]:
        self.shackle_closed = True
        if self.state == "open":
            self.state = "unsealed"
        return ["status"]

    # --- commands ----------------------------------------------------------------------

    def command(self, serial: int, block: BondWatchBlock, now: datetime) -> Outcome:
        """Carry out a command once; a repeat of the same serial gets the same answer."""
        cached = self.answers.get(serial)
        if cached is not None:
            return cached, []
        code = block.command if block.command is not None else 0
        name = profile.COMMAND_BY_CODE.get(code)
        events: list[profile.LockEventName] = []
        result: profile.ResultName
        if block.lock_id != self.lock_id:
            result, reason = "refused", "wrong_lock"
        elif name == "seal":
            result, reason, events = self._seal(block)
        elif name == "unseal":
            result, reason, events = self._unseal(block, now)
        elif name == "set_area":
            result, reason, events = self._set_area(block, now)
        elif name == "query":
            result, reason = "done", ""
        else:
            result, reason = "refused", "bad_command"
        answer = BondWatchBlock(
            lock_id=self.lock_id,
            state=profile.STATE_CODES[self.state],
            battery_pct=max(0, min(100, round(self.battery_pct))),
            battery_mv=self.battery_mv,
            wrong_passwords=self.wrong_passwords,
            trip_id=self.trip_id,
            command_result=CommandResult(
                serial, code, profile.RESULT_CODES[result], profile.REASON_CODES[reason]
            ),
        )
        self.answers[serial] = answer
        while len(self.answers) > ANSWER_CACHE:
            self.answers.popitem(last=False)
        return answer, events

    def _seal(
        self, block: BondWatchBlock
    ) -> tuple[profile.ResultName, str, list[profile.LockEventName]]:
        if not block.trip_id:
            return "refused", "bad_command", []
        if self.state == "sealed":
            if block.trip_id == self.trip_id:
                return "done", "", []
            return "refused", "already_sealed", []
        if not self.shackle_closed:
            return "refused", "shackle_open", []
        if self.motor_stuck:
            return "failed", "motor_stuck", ["motor_stuck"]
        self.state = "sealed"
        self.trip_id = block.trip_id
        self.wrong_passwords = 0
        return "done", "", ["sealed"]

    def _authorised(
        self, block: BondWatchBlock, now: datetime
    ) -> tuple[str, list[profile.LockEventName]]:
        """'' when the token is good for the sealed trip, else the refusal reason."""
        if self.state != "sealed" or self.trip_id is None:
            return "not_sealed", []
        if block.trip_id is not None and block.trip_id != self.trip_id:
            return "wrong_trip", []
        check = check_unseal_token(self.secret, self.lock_id, self.trip_id, block.token or b"", now)
        if check == "bad_token":
            self.wrong_passwords += 1
            return "bad_token", ["wrong_password"]
        if check == "token_expired":
            return "token_expired", []
        return "", []

    def _unseal(
        self, block: BondWatchBlock, now: datetime
    ) -> tuple[profile.ResultName, str, list[profile.LockEventName]]:
        reason, events = self._authorised(block, now)
        if reason:
            return "refused", reason, events
        if self.area is None:
            return "refused", "no_area", ["unseal_refused_outside_area"]
        if self.lat is None or self.lon is None:
            return "refused", "no_position", ["unseal_refused_outside_area"]
        if distance_m(self.lat, self.lon, self.area.lat, self.area.lon) > self.area.radius_m:
            return "refused", "outside_area", ["unseal_refused_outside_area"]
        if self.motor_stuck:
            return "failed", "motor_stuck", ["motor_stuck"]
        self.state = "unsealed"
        self.wrong_passwords = 0
        return "done", "", ["unsealed"]

    def _set_area(
        self, block: BondWatchBlock, now: datetime
    ) -> tuple[profile.ResultName, str, list[profile.LockEventName]]:
        if block.area is None:
            return "refused", "bad_command", []
        reason, events = self._authorised(block, now)
        if reason:
            return "refused", reason, events
        self.area = block.area
        return "done", "", []

"""The e-lock's state machine, free of I/O: commands and faults in, answers and events out.

States follow the BondWatch lock profile: `sealed` (shackle closed and armed),
`unsealed` (disarmed by an authorised command), `open` (shackle open or rope cut).

Seal, unseal and set_area need a token (`devices.elock.authorisation`), each token works
once: `token_counter` is the highest token counter used. Every report carries the next
`report_counter` and a MAC (`devices.elock.report_mac`). Both counters are what a real
lock keeps in flash; `persisted()` / `restore()` give them to the stub's state file.

The last `ANSWER_CACHE` answers are kept by serial, each with the fingerprint of its
command (`command_fingerprint`: message id, serial and body): only a repeat of the very
same command gets its answer again; another command under a cached serial (a restarted
gateway counting again) is carried out.
"""

from __future__ import annotations

import hashlib
import struct
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from devices.elock import profile
from devices.elock.authorisation import TokenAction, check_token
from devices.elock.block import Area, BondWatchBlock, CommandResult
from devices.elock.bodies import MSG_TRANSPARENT_DOWN, Transparent
from devices.elock.report_mac import MAX_COUNTER, report_mac
from devices.geodesy import great_circle_m

ANSWER_CACHE = 32


Outcome = tuple[BondWatchBlock, list[profile.LockEventName]]


def command_fingerprint(msg_id: int, serial: int, body: bytes) -> bytes:
    """What makes two command frames "the same command" (docs/lock-profile.md): message
    id, serial number and body, hashed (SHA-256) as a lock with little memory keeps it."""
    return hashlib.sha256(struct.pack(">HH", msg_id, serial) + body).digest()


@dataclass(frozen=True)
class CachedAnswer:
    """An answer the lock sent, and the fingerprint of the command it answered."""

    fingerprint: bytes
    answer: BondWatchBlock


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
    #: The highest token counter used (a token at or under it is refused as reused).
    token_counter: int = 0
    #: The counter of the last report sent.
    report_counter: int = 0
    #: The last answers by serial (oldest first), each with its command's fingerprint.
    answers: OrderedDict[int, CachedAnswer] = field(default_factory=OrderedDict)

    # --- reports -----------------------------------------------------------------------

    @property
    def battery_mv(self) -> int:
        return round(3300 + 9 * self.battery_pct)

    @property
    def battery_whole_pct(self) -> int:
        return max(0, min(100, round(self.battery_pct)))

    def block(self, event: profile.LockEventName, time: datetime) -> BondWatchBlock:
        """The signed BondWatch block of the next status or event report at `time` (whole
        seconds, as the report carries it): the report counter goes up by one."""
        if self.report_counter >= MAX_COUNTER:
            raise RuntimeError(f"lock {self.lock_id}: report counter exhausted")
        self.report_counter += 1
        battery = self.battery_whole_pct
        return BondWatchBlock(
            lock_id=self.lock_id,
            state=profile.STATE_CODES[self.state],
            event=profile.EVENT_CODES[event],
            battery_pct=battery,
            battery_mv=self.battery_mv,
            wrong_passwords=self.wrong_passwords,
            trip_id=self.trip_id,
            report_counter=self.report_counter,
            report_mac=report_mac(
                self.secret, self.lock_id, self.report_counter, time, self.state, event, battery
            ),
        )

    def persisted(self) -> dict[str, Any]:
        """What survives a restart of the lock (its flash): the two counters."""
        return {"report_counter": self.report_counter, "token_counter": self.token_counter}

    def restore(self, saved: dict[str, Any]) -> None:
        """Take the counters back from `persisted()`; ValueError if they are not counters."""
        counters = {k: saved.get(k, 0) for k in ("report_counter", "token_counter")}
        for key, value in counters.items():
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{key} must be a non-negative integer, not {value!r}")
        self.report_counter = counters["report_counter"]
        self.token_counter = counters["token_counter"]

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

    def command(
        self,
        serial: int,
        block: BondWatchBlock,
        now: datetime,
        *,
        body: bytes | None = None,
        msg_id: int = MSG_TRANSPARENT_DOWN,
    ) -> Outcome:
        """Carry out a command once. `body` is the command frame's body as received
        (default: the transparent body of `block`). A repeat — the same `msg_id`, `serial`
        and `body` as a command answered before — gets the same answer again, carried out
        no second time; any other command is carried out, whatever its serial."""
        if body is None:
            body = Transparent(profile.TRANSPARENT_TYPE, block.encode(), downlink=True).encode()
        fingerprint = command_fingerprint(msg_id, serial, body)
        cached = self.answers.get(serial)
        if cached is not None and cached.fingerprint == fingerprint:
            return cached.answer, []
        code = block.command if block.command is not None else 0
        name = profile.COMMAND_BY_CODE.get(code)
        events: list[profile.LockEventName] = []
        result: profile.ResultName
        if block.lock_id != self.lock_id:
            result, reason = "refused", "wrong_lock"
        elif name == "seal":
            result, reason, events = self._seal(block, now)
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
            battery_pct=self.battery_whole_pct,
            battery_mv=self.battery_mv,
            wrong_passwords=self.wrong_passwords,
            trip_id=self.trip_id,
            command_result=CommandResult(
                serial, code, profile.RESULT_CODES[result], profile.REASON_CODES[reason]
            ),
        )
        self.answers[serial] = CachedAnswer(fingerprint, answer)
        self.answers.move_to_end(serial)
        while len(self.answers) > ANSWER_CACHE:
            self.answers.popitem(last=False)
        return answer, events

    def _seal(
        self, block: BondWatchBlock, now: datetime
    ) -> tuple[profile.ResultName, str, list[profile.LockEventName]]:
        if not block.trip_id:
            return "refused", "bad_command", []
        reason, events = self._token_ok("seal", block.trip_id, block, now)
        if reason:
            return "refused", reason, events
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
        self, action: TokenAction, block: BondWatchBlock, now: datetime
    ) -> tuple[str, list[profile.LockEventName]]:
        """'' when the token is good for `action` on the sealed trip, else the reason."""
        if self.state != "sealed" or self.trip_id is None:
            return "not_sealed", []
        if block.trip_id is not None and block.trip_id != self.trip_id:
            return "wrong_trip", []
        return self._token_ok(action, self.trip_id, block, now)

    def _token_ok(
        self, action: TokenAction, trip_id: str, block: BondWatchBlock, now: datetime
    ) -> tuple[str, list[profile.LockEventName]]:
        """Check the block's token for `action` on `trip_id`; a good one is used up."""
        area = block.area if action == "set_area" else None
        verdict = check_token(
            self.secret,
            self.lock_id,
            action,
            trip_id,
            block.token or b"",
            now,
            self.token_counter,
            area,
        )
        if verdict.result == "bad_token":
            self.wrong_passwords += 1
            return "bad_token", ["wrong_password"]
        if verdict.result != "ok":
            return verdict.result, []
        self.token_counter = verdict.counter  # used: never again, whatever happens next
        return "", []

    def _unseal(
        self, block: BondWatchBlock, now: datetime
    ) -> tuple[profile.ResultName, str, list[profile.LockEventName]]:
        reason, events = self._authorised("unseal", block, now)
        if reason:
            return "refused", reason, events
        if self.area is None:
            return "refused", "no_area", ["unseal_refused_outside_area"]
        if self.lat is None or self.lon is None:
            return "refused", "no_position", ["unseal_refused_outside_area"]
        if great_circle_m(self.lat, self.lon, self.area.lat, self.area.lon) > self.area.radius_m:
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
        reason, events = self._authorised("set_area", block, now)
        if reason:
            return "refused", reason, events
        self.area = block.area
        return "done", "", []

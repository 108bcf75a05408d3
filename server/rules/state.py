"""Per-trip rule state: immutable dataclasses, one part per rule."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from contract.payloads import LockState
from server.rules.inputs import Fix


@dataclass(frozen=True, slots=True)
class DeviationState:
    outside_since: datetime | None = None
    inside_since: datetime | None = None
    active: bool = False
    max_excess_m: float = 0.0


@dataclass(frozen=True, slots=True)
class ZoneState:
    inside_since: datetime | None = None
    outside_since: datetime | None = None
    zone_id: str | None = None
    active: bool = False


@dataclass(frozen=True, slots=True)
class StopState:
    anchor: tuple[float, float] | None = None
    since: datetime | None = None
    #: Usable fixes of this stop inside an allowed stop zone or end site, and outside.
    allowed_fixes: int = 0
    other_fixes: int = 0
    active: bool = False

    @property
    def allowed(self) -> bool:
        """Most of the stop's fixes lie where stopping is allowed."""
        return self.allowed_fixes > self.other_fixes


@dataclass(frozen=True, slots=True)
class SpeedState:
    over_since: datetime | None = None
    under_since: datetime | None = None
    last_ts: datetime | None = None
    active: bool = False
    max_kmh: float = 0.0


@dataclass(frozen=True, slots=True)
class PlausibilityState:
    candidate: Fix | None = None
    consistent: int = 0
    rejected: int = 0


@dataclass(frozen=True, slots=True)
class GnssState:
    last_valid_at: datetime | None = None
    last_valid_pos: tuple[float, float] | None = None
    near_tunnel: bool | None = None
    active: bool = False


@dataclass(frozen=True, slots=True)
class DeviceState:
    last_heard_at: datetime | None = None
    active: bool = False


@dataclass(frozen=True, slots=True)
class LockRuleState:
    lock_states: tuple[tuple[str, LockState], ...] = ()
    low_battery: frozenset[str] = frozenset()
    wrong_passwords: tuple[datetime, ...] = ()

    def lock_state(self, lock_id: str) -> LockState:
        for lid, st in self.lock_states:
            if lid == lock_id:
                return st
        return "sealed"  # a trip starts with its locks sealed (checked at departure)

    def with_lock_state(self, lock_id: str, st: LockState) -> tuple[tuple[str, LockState], ...]:
        others = tuple((lid, s) for lid, s in self.lock_states if lid != lock_id)
        return (*others, (lock_id, st))


@dataclass(frozen=True, slots=True)
class LockAuthState:
    """The last authentic report counter of each lock (`server.rules.lock_auth`)."""

    counters: tuple[tuple[str, int], ...] = ()

    def counter(self, lock_id: str) -> int | None:
        for lid, counter in self.counters:
            if lid == lock_id:
                return counter
        return None

    def with_counter(self, lock_id: str, counter: int) -> tuple[tuple[str, int], ...]:
        others = tuple((lid, c) for lid, c in self.counters if lid != lock_id)
        return (*others, (lock_id, counter))


@dataclass(frozen=True, slots=True)
class TripState:
    """Everything the rules remember about one trip. Copy freely; never mutate."""

    last_fix: Fix | None = None
    deviation: DeviationState = field(default_factory=DeviationState)
    zone: ZoneState = field(default_factory=ZoneState)
    stop: StopState = field(default_factory=StopState)
    speed: SpeedState = field(default_factory=SpeedState)
    plausibility: PlausibilityState = field(default_factory=PlausibilityState)
    gnss: GnssState = field(default_factory=GnssState)
    device: DeviceState = field(default_factory=DeviceState)
    lock: LockRuleState = field(default_factory=LockRuleState)
    lock_auth: LockAuthState = field(default_factory=LockAuthState)
    overdue_raised: bool = False

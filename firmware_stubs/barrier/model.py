"""The simulated plant: relay module outputs, the barrier arm, its limit switches, two loops,
and the lane's traffic light (red and green lamps on relays 3 and 4).

Time is passed in (`now`, seconds): the model itself reads no clock, so it can be
stepped in tests. The register layout is the default profile of
`devices.barrier.registers` (the stub must not import the driver, only these facts).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from devices.barrier.registers import (
    COIL_CLOSE,
    COIL_LAMP_GREEN,
    COIL_LAMP_RED,
    COIL_OPEN,
    DI_CLOSED_LIMIT,
    DI_FAULT,
    DI_LOOP_LANE_1,
    DI_LOOP_LANE_2,
    DI_OPEN_LIMIT,
    STATUS_INTERNAL_ERROR,
    STATUS_OUTPUTS_ENABLED,
)

N_COILS = 8
N_INPUTS = 8
FIRMWARE_VERSION = 0x0102
_EPSILON = 1e-9  # summing time steps leaves float dust short of the end stops
LimitOverride = Literal["on", "off"] | None
Lamp = Literal["off", "red", "green", "both"]
#: Lamp changes kept for the control channel's `state` (the newest ones).
LAMP_HISTORY = 100


@dataclass
class BarrierPlant:
    """A barrier controller with OPEN/CLOSE push-button inputs driven by the relays."""

    travel_s: float = 3.0
    """Seconds from fully closed to fully open (and back)."""
    hold_mode: bool = False
    """Hold mode: the OPEN relay held means open, released means close."""
    auto_close_s: float | None = None
    """Close this many seconds after the last vehicle left lane 1's loop (pulse mode)."""
    jam_position: float = 0.4
    """Where a jammed arm stalls on its way up (0 closed .. 1 open)."""

    position: float = 0.0
    motion: int = 0  # +1 opening, -1 closing, 0 still
    coils: list[bool] = field(default_factory=lambda: [False] * N_COILS)
    loops: list[bool] = field(default_factory=lambda: [False, False])
    jammed: bool = False
    fault: bool = False
    module_error: bool = False
    stuck_open_limit: LimitOverride = None
    stuck_closed_limit: LimitOverride = None
    commands: list[str] = field(default_factory=list)
    lamp_history: list[Lamp] = field(default_factory=list)
    """Every change of the traffic light, oldest first (the last `LAMP_HISTORY`)."""
    _last: float | None = None
    _auto_close_at: float | None = None

    # ------------------------------------------------------------ relay outputs

    def write_coil(self, address: int, value: bool, now: float) -> bool:
        """Set a relay; False if the module has no such coil."""
        if not 0 <= address < N_COILS:
            return False
        self.tick(now)
        before = self.coils[address]
        lamp_before = self.lamp()
        self.coils[address] = value
        self._lamp_changed(lamp_before)
        rising = value and not before
        falling = before and not value
        if address == COIL_OPEN and rising:
            self._command("open")
        elif (address == COIL_OPEN and self.hold_mode and falling) or (
            address == COIL_CLOSE and rising
        ):
            self._command("close")
        return True

    def reset_outputs(self) -> None:
        """Every relay released, as after a power cycle of the module."""
        lamp_before = self.lamp()
        self.coils = [False] * N_COILS
        self._lamp_changed(lamp_before)

    def _lamp_changed(self, before: Lamp) -> None:
        now = self.lamp()
        if now != before:
            self.lamp_history.append(now)
            del self.lamp_history[:-LAMP_HISTORY]

    def lamp(self) -> Lamp:
        """What the lane's traffic light shows."""
        red, green = self.coils[COIL_LAMP_RED], self.coils[COIL_LAMP_GREEN]
        if red and green:
            return "both"
        return "red" if red else "green" if green else "off"

    def _command(self, action: str) -> None:
        self.commands.append(action)
        self._auto_close_at = None
        if self.fault:
            return  # a controller in fault ignores its push-buttons
        self.motion = 1 if action == "open" else -1

    # ------------------------------------------------------------ the world

    def set_loop(self, lane: int, occupied: bool, now: float) -> None:
        self.tick(now)
        was = self.loops[lane - 1]
        self.loops[lane - 1] = occupied
        if lane != 1 or self.auto_close_s is None or self.hold_mode:
            return
        if occupied:
            self._auto_close_at = None
        elif was and self.motion >= 0 and self.position > 0:
            self._auto_close_at = now + self.auto_close_s

    def tick(self, now: float) -> None:
        """Advance the arm to time `now`."""
        if self._last is None:
            self._last = now
        dt = max(0.0, now - self._last)
        self._last = now
        if self.motion:
            self.position += self.motion * dt / self.travel_s
            if self.jammed and self.motion > 0 and self.position >= self.jam_position:
                self.position = self.jam_position
                self.motion = 0
            if self.position >= 1.0 - _EPSILON:
                self.position, self.motion = 1.0, 0
            elif self.position <= _EPSILON:
                self.position, self.motion = 0.0, 0
        if self._auto_close_at is not None and now >= self._auto_close_at:
            self._auto_close_at = None
            if not self.loops[0]:
                self.commands.append("auto_close")
                self.motion = -1

    # ------------------------------------------------------------ what the module reads

    def open_limit(self) -> bool:
        if self.stuck_open_limit is not None:
            return self.stuck_open_limit == "on"
        return self.position >= 1.0

    def closed_limit(self) -> bool:
        if self.stuck_closed_limit is not None:
            return self.stuck_closed_limit == "on"
        return self.position <= 0.0

    def discrete_inputs(self) -> list[bool]:
        bits = [False] * N_INPUTS
        bits[DI_LOOP_LANE_1] = self.loops[0]
        bits[DI_LOOP_LANE_2] = self.loops[1]
        bits[DI_OPEN_LIMIT] = self.open_limit()
        bits[DI_CLOSED_LIMIT] = self.closed_limit()
        bits[DI_FAULT] = self.fault
        return bits

    def input_registers(self) -> list[int]:
        word = STATUS_OUTPUTS_ENABLED | (STATUS_INTERNAL_ERROR if self.module_error else 0)
        return [word, FIRMWARE_VERSION]

    def snapshot(self) -> dict[str, Any]:
        return {
            "position": round(self.position, 3),
            "motion": {1: "opening", -1: "closing", 0: "still"}[self.motion],
            "open_limit": self.open_limit(),
            "closed_limit": self.closed_limit(),
            "loops": list(self.loops),
            "coils": list(self.coils),
            "jammed": self.jammed,
            "fault": self.fault,
            "commands": list(self.commands),
            "lamp": self.lamp(),
            "lamps": list(self.lamp_history),
        }

"""The truck's motion along the route: cruise speed, acceleration, planned stops."""

from __future__ import annotations

import math
from dataclasses import dataclass, field


def parse_stops(text: str) -> list[tuple[float, float]]:
    """`"km:seconds,km:seconds"` → [(metres along route, dwell seconds)], sorted."""
    stops: list[tuple[float, float]] = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        km, _, seconds = item.partition(":")
        stops.append((float(km) * 1000.0, float(seconds or 0)))
    return sorted(stops)


@dataclass
class Motion:
    """Distance and speed along a route of `length_m`, advanced by `step(dt)`: speed
    changes by at most `accel_mps2` (speeding up and braking), up to `cruise_mps`; the
    truck stops exactly at each planned stop, waits there, and at the end."""

    length_m: float
    cruise_mps: float
    accel_mps2: float = 1.0
    stops: list[tuple[float, float]] = field(default_factory=list)
    loop: bool = False
    distance_m: float = 0.0
    speed_mps: float = 0.0
    dwell_left_s: float = 0.0
    finished: bool = False
    _next_stop: int = 0

    def _target(self) -> tuple[float, float] | None:
        if self._next_stop < len(self.stops):
            return self.stops[self._next_stop]
        return (self.length_m, 0.0)

    def _stoppable_mps(self, to_go: float, dt: float) -> float:
        """The highest speed from which steps of `dt`, each `accel * dt` slower than the
        last, stop within `to_go` metres: from v = n * a * dt they cover
        a * dt**2 * n * (n + 1) / 2. Braking along it never exceeds `accel`."""
        step = self.accel_mps2 * dt
        n = math.sqrt(0.25 + 2.0 * to_go / (step * dt)) - 0.5
        return step * n

    def step(self, dt: float) -> None:
        if self.finished:
            return
        if self.dwell_left_s > 0:
            self.dwell_left_s -= dt
            self.speed_mps = 0.0
            return
        target = self._target()
        assert target is not None
        stop_at, dwell = target
        to_go = stop_at - self.distance_m
        self.speed_mps = min(
            self.cruise_mps,
            self.speed_mps + self.accel_mps2 * dt,
            self._stoppable_mps(max(to_go, 0.0), dt),
        )
        advance = self.speed_mps * dt
        if advance >= to_go or (self.speed_mps == 0.0 and to_go < 1.0):
            # Arrived, rolling at most `accel * dt` (the speed of this last step): the
            # speed is zero from the next step on, for the dwell (one step at least).
            self.distance_m = stop_at
            if self._next_stop < len(self.stops):
                self._next_stop += 1
                self.dwell_left_s = max(dwell, dt / 2)
            elif self.loop:
                self.distance_m = 0.0
                self.speed_mps = 0.0
                self._next_stop = 0
            else:
                self.speed_mps = 0.0
                self.finished = True
        else:
            self.distance_m += advance

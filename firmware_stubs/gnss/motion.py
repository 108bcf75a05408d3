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
    """Distance and speed along a route of `length_m`, advanced by `step(dt)`."""

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
        braking = self.speed_mps**2 / (2 * self.accel_mps2)
        if to_go <= braking + self.speed_mps * dt * 0.5:
            # Brake so as to arrive exactly at the stop.
            self.speed_mps = math.sqrt(max(0.0, 2 * self.accel_mps2 * max(to_go, 0.0)))
            self.speed_mps = max(0.0, self.speed_mps - self.accel_mps2 * dt)
        else:
            self.speed_mps = min(self.cruise_mps, self.speed_mps + self.accel_mps2 * dt)
        advance = self.speed_mps * dt
        if advance >= to_go or (self.speed_mps == 0.0 and to_go < 1.0):
            self.distance_m = stop_at
            self.speed_mps = 0.0
            if self._next_stop < len(self.stops):
                self._next_stop += 1
                self.dwell_left_s = dwell
            elif self.loop:
                self.distance_m = 0.0
                self._next_stop = 0
            else:
                self.finished = True
        else:
            self.distance_m += advance

"""Simulated trucks on the demo geography, reporting as the truck agent does.

A `Truck` moves on the real route lines of `config/demo/routes` (their shapely geometry,
in each route's own metric frame): along a route by chainage, straight towards a point
(a detour), or parked. Every second it takes a GNSS epoch of that truth:

- error: a correlated random walk per axis with σ = 2.5 m per unit of HDOP (HDOP 0.7–1.6
  on the open road, 1.5–3.5 with fewer satellites in urban zones, brief spikes to 3–5),
  multipath jumps of 30–80 m lasting 1–3 s (more often in town), Doppler speed noise;
- no fix inside tunnel zones (or while `jammed`);

and the agent's own reporting policy (`edge.truck.policy.should_report`, default
settings: every 10 s, after 200 m or a 30° turn, at once on fix loss/recovery) decides
which epochs become `position` messages. The lock reports its status every
`lock_every_s` and events when told. Messages carry the node's `seq` and their own
`ts` (GNSS time), exactly the contract payloads the agent publishes.

Time is the simulation's: `start` is any datetime, and the messages can be published
as fast as the broker takes them — the server measures everything on `ts`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import shapely

from contract import topics
from contract.ids import format_ts, parse_ts
from edge.truck.policy import ReportingPolicy, Sample, should_report
from server.geo import Geography, Route, Zone
from server.geo.projection import FloatArray
from tests.lock_reports import signed_lock_fields

PROJECT = Path(__file__).resolve().parents[3]
DEMO = PROJECT / "config" / "demo"
SIGMA_PER_HDOP_M = 2.5
LOCK_EVERY_S = 300.0


@cache
def demo_geography() -> Geography:
    return Geography.from_files(
        sorted((DEMO / "routes").glob("*.geojson")), [DEMO / "zones.geojson"]
    )


# ---------------------------------------------------------------- route geometry
def chainage_range(
    route: Route, polygon: shapely.Polygon, step_m: float = 10.0
) -> tuple[float, float]:
    """(first, last) chainage of the route line inside `polygon` (lon/lat)."""
    chain = np.arange(0.0, route.length_m, step_m)
    points = shapely.line_interpolate_point(route.line_m, chain)
    xs, ys = shapely.get_coordinates(points).T
    lons, lats = route.projection.inverse_many(xs, ys)
    inside = chain[shapely.contains_xy(polygon, lons, lats)]
    if len(inside) == 0:
        raise ValueError(f"route {route.route_id} does not cross the polygon")
    return float(inside[0]), float(inside[-1])


def route_point(route: Route, s: float) -> tuple[float, float]:
    """(lon, lat) at chainage `s` metres along the route."""
    x, y = route.line_m.interpolate(s).coords[0]
    return route.projection.inverse(x, y)


def zone(zone_id: str) -> Zone:
    return demo_geography().zone(zone_id)


# ---------------------------------------------------------------- messages
@dataclass(frozen=True, slots=True)
class Message:
    """One edge→server message as the truck agent publishes it."""

    channel: str
    payload: dict[str, Any]

    @property
    def node_id(self) -> str:
        return str(self.payload["node_id"])

    @property
    def seq(self) -> int:
        return int(self.payload["seq"])

    @property
    def ts(self) -> datetime:
        return parse_ts(self.payload["ts"])

    @property
    def topic(self) -> str:
        return topics.build("truck", self.node_id, self.channel)  # type: ignore[arg-type]

    def body(self) -> bytes:
        return json.dumps(self.payload, ensure_ascii=False).encode("utf-8")

    def replayed(self) -> Message:
        """The same message as sent from the outbox after a gap (`replayed: true`)."""
        return Message(self.channel, {**self.payload, "replayed": True})


#: The secrets of the scenario trucks' locks, as the server is configured with them.
SCENARIO_LOCK_SECRETS = {"EL-1": "scenario-lock-EL-1-secret"}


# ---------------------------------------------------------------- the truck
@dataclass
class Truck:
    node_id: str
    route_id: str
    start: datetime
    seed: int = 0
    lock_id: str = "EL-1"
    battery_pct: float = 86.0
    policy: ReportingPolicy = field(default_factory=ReportingPolicy)
    lock_every_s: float = LOCK_EVERY_S
    #: the next seq; the agent reserves seq 1 for its first last will (never sent here)
    next_seq: int = 2
    #: the lock's secret (the server holds it: `SCENARIO_LOCK_SECRETS`) and report counter
    lock_secret: str = ""
    lock_counter: int = 0

    def __post_init__(self) -> None:
        self.geo = demo_geography()
        self.route = self.geo.route(self.route_id)
        self.proj = self.route.projection
        self.rng = np.random.default_rng(self.seed)
        self.clock = 0.0  # seconds since `start`
        self.s: float | None = 0.0  # chainage, None when off the route line
        self.x, self.y = self.route.line_m.interpolate(0.0).coords[0]
        self.speed_kmh = 0.0
        self.course = 0.0
        self.messages: list[Message] = []
        self._taken = 0
        self.jammed = False
        self.lock_state = "sealed"
        self._err: npt.NDArray[np.float64] = np.zeros(2)
        self._jump: npt.NDArray[np.float64] = np.zeros(2)
        self._jump_left = 0
        self._last_sample: Sample | None = None
        self._last_fix: tuple[float, float] | None = None
        self._next_lock = 0.0
        coords = np.asarray(self.route.line_m.coords)
        self._vx, self._vy = coords[:, 0], coords[:, 1]
        self._cum = np.concatenate(
            ([0.0], np.cumsum(np.hypot(np.diff(self._vx), np.diff(self._vy))))
        )
        self._tunnel_m = self._zones_in_frame("tunnel")
        self._urban_m = self._zones_in_frame("urban")

    def _zones_in_frame(self, kind: str) -> shapely.Geometry:
        """The zones of `kind` as one geometry in the route's metric frame."""
        parts = []
        for z in self.geo.zones:
            if z.kind == kind:
                ring = np.asarray(z.polygon.exterior.coords)
                xs, ys = self.proj.forward_many(ring[:, 0], ring[:, 1])
                parts.append(shapely.Polygon(np.column_stack([xs, ys])))
        union = shapely.union_all(parts) if parts else shapely.Polygon()
        shapely.prepare(union)
        return union

    # ---- time and output ---------------------------------------------------------
    @property
    def now(self) -> datetime:
        return self.start + timedelta(seconds=self.clock)

    def at(self, seconds: float) -> datetime:
        return self.start + timedelta(seconds=seconds)

    @property
    def lonlat(self) -> tuple[float, float]:
        """The truth position now."""
        return self.proj.inverse(self.x, self.y)

    def _emit(self, channel: str, **fields: Any) -> Message:
        payload = {"node_id": self.node_id, "seq": self.next_seq, "ts": format_ts(self.now)}
        payload.update(fields)
        self.next_seq += 1
        message = Message(channel, payload)
        self.messages.append(message)
        return message

    def take(self) -> list[Message]:
        """The messages not taken before (to publish them)."""
        out = self.messages[self._taken :]
        self._taken = len(self.messages)
        return out

    def positions(self) -> list[Message]:
        return [m for m in self.messages if m.channel == "position"]

    def fixes(self) -> list[Message]:
        return [m for m in self.positions() if m.payload["fix"] != "none"]

    # ---- the agent ---------------------------------------------------------------
    def lock(self, state: str | None = None, event: str = "status", **extra: Any) -> Message:
        """A lock report (the lock's status heartbeat, or an event) with its state."""
        self.lock_state = state or self.lock_state
        self.lock_counter += 1
        at = self.now.replace(microsecond=0)  # a lock's clock: whole seconds
        secret = self.lock_secret or SCENARIO_LOCK_SECRETS[self.lock_id]
        battery = max(0, min(100, round(self.battery_pct)))
        fields: dict[str, Any] = {"ts": format_ts(at)} | signed_lock_fields(
            secret, self.lock_id, at, self.lock_state, event, battery, self.lock_counter
        )
        if self._last_fix is not None:
            fields["lon"], fields["lat"] = (round(v, 7) for v in self._last_fix)
        fields.update(extra)
        return self._emit("lock", **fields)

    def availability(self, state: str) -> Message:
        return self._emit("availability", state=state)

    def _run(self, xs: FloatArray, ys: FloatArray, speed_kmh: float) -> None:
        """Drive through the truth positions (one a second) at `speed_kmh`."""
        if len(xs) == 0:
            return
        rng = self.rng
        px = np.concatenate(([self.x], xs))
        py = np.concatenate(([self.y], ys))
        dx, dy = np.diff(px), np.diff(py)
        moved = np.hypot(dx, dy) > 0.01
        courses = np.where(moved, np.degrees(np.arctan2(dx, dy)) % 360.0, np.nan)
        tunnel = shapely.contains_xy(self._tunnel_m, xs, ys)
        urban = shapely.contains_xy(self._urban_m, xs, ys)
        n = len(xs)
        noise = np.zeros((n, 2))
        hdops = np.zeros(n)
        sats = np.zeros(n, dtype=int)
        for i in range(n):
            hdop = rng.uniform(1.5, 3.5) if urban[i] else rng.uniform(0.7, 1.6)
            if rng.random() < 0.02:
                hdop = rng.uniform(3.0, 5.0)
            hdops[i] = hdop
            sats[i] = rng.integers(5, 10) if urban[i] else rng.integers(10, 19)
            sigma = SIGMA_PER_HDOP_M * hdop
            self._err = 0.95 * self._err + rng.normal(0.0, sigma * math.sqrt(1 - 0.95**2), 2)
            if self._jump_left == 0 and rng.random() < (0.02 if urban[i] else 0.002):
                angle = rng.uniform(0.0, 2 * math.pi)
                self._jump = np.array([math.cos(angle), math.sin(angle)]) * rng.uniform(30, 80)
                self._jump_left = int(rng.integers(1, 4))
            noise[i] = self._err + (self._jump if self._jump_left else 0.0)
            self._jump_left = max(0, self._jump_left - 1)
        lons, lats = self.proj.inverse_many(xs + noise[:, 0], ys + noise[:, 1])
        for i in range(n):
            self.clock += 1.0
            if not np.isnan(courses[i]):
                self.course = float(courses[i])
            self.x, self.y, self.speed_kmh = float(xs[i]), float(ys[i]), speed_kmh
            if self.jammed or tunnel[i]:
                self._report(Sample(self.clock, None, None, None, None, False), {})
            else:
                self._fix(float(lons[i]), float(lats[i]), float(hdops[i]), int(sats[i]))
            if self.clock >= self._next_lock:
                self._next_lock = self.clock + self.lock_every_s
                self.battery_pct = max(0.0, self.battery_pct - 0.05)
                self.lock()

    def _fix(self, lon: float, lat: float, hdop: float, sats: int) -> None:
        rng = self.rng
        moving = self.speed_kmh > 1.0
        if moving:
            speed = max(0.0, self.speed_kmh + float(rng.normal(0.0, 0.4)))
            course: float | None = (self.course + float(rng.normal(0.0, 1.5))) % 360.0
        else:
            speed, course = abs(float(rng.normal(0.0, 0.3))), None
        fields: dict[str, Any] = {
            "lat": round(lat, 7),
            "lon": round(lon, 7),
            "alt_m": round(12.0 + float(rng.normal(0.0, 2.0)), 1),
            "speed_kmh": round(speed, 2),
            "fix": "3d",
            "sats": sats,
            "hdop": round(hdop, 2),
            "systems": ["GPS", "BDS"],
        }
        if course is not None:
            fields["course_deg"] = round(course, 1) % 360.0
        if self._report(Sample(self.clock, lat, lon, course, speed, True), fields):
            self._last_fix = (lon, lat)

    def _report(self, sample: Sample, fields: dict[str, Any]) -> bool:
        """The agent's reporting policy: send this epoch or not."""
        if not should_report(self.policy, self._last_sample, sample):
            return False
        self._last_sample = sample
        if not fields:
            fields = {"fix": "none", "sats": 0, "systems": []}
        self._emit("position", **fields, replayed=False)
        return True

    # ---- movements ---------------------------------------------------------------
    def park(self, seconds: float) -> Truck:
        """Stand still (engine on, receiver on) for `seconds`."""
        n = int(seconds)
        self._run(np.full(n, self.x), np.full(n, self.y), 0.0)
        return self

    def along(self, to_s: float, speed_kmh: float) -> Truck:
        """Drive along the route to chainage `to_s` (metres) at `speed_kmh`."""
        if self.s is None:
            raise ValueError("off the route line: use rejoin() first")
        to_s = min(to_s, self.route.length_m)
        if to_s <= self.s:
            return self
        chain = np.append(np.arange(self.s + speed_kmh / 3.6, to_s, speed_kmh / 3.6), to_s)
        xs = np.interp(chain, self._cum, self._vx)
        ys = np.interp(chain, self._cum, self._vy)
        self.s = to_s
        self._run(xs, ys, speed_kmh)
        return self

    def along_to(self, polygon: shapely.Polygon, speed_kmh: float, where: str = "middle") -> Truck:
        """Drive along the route to the middle (or `start`/`end`) of its part inside `polygon`."""
        first, last = chainage_range(self.route, polygon)
        target = {"start": first, "middle": (first + last) / 2, "end": last}[where]
        return self.along(target, speed_kmh)

    def towards(self, lon: float, lat: float, speed_kmh: float) -> Truck:
        """Drive straight to (lon, lat), leaving the route line."""
        tx, ty = self.proj.forward(lon, lat)
        self.s = None
        d = math.hypot(tx - self.x, ty - self.y)
        steps = max(1, math.ceil(d / (speed_kmh / 3.6)))
        f = np.arange(1, steps + 1) / steps
        self._run(self.x + (tx - self.x) * f, self.y + (ty - self.y) * f, speed_kmh)
        return self

    def sidestep(self, metres: float, along_m: float, speed_kmh: float) -> Truck:
        """Leave the route to a parallel road `metres` to the left, drive `along_m` there,
        and come back to the route (a detour through places the route avoids)."""
        assert self.s is not None
        s0 = self.s
        left = self._offset_point(s0 + 300.0, metres)
        self.towards(*left, speed_kmh)
        far = self._offset_point(s0 + 300.0 + along_m, metres)
        self.towards(*far, speed_kmh)
        return self.rejoin(s0 + 600.0 + along_m, speed_kmh)

    def _offset_point(self, s: float, metres: float) -> tuple[float, float]:
        line = self.route.line_m
        x0, y0 = line.interpolate(max(0.0, s - 5.0)).coords[0]
        x1, y1 = line.interpolate(s + 5.0).coords[0]
        n = math.hypot(x1 - x0, y1 - y0)
        x, y = line.interpolate(s).coords[0]
        return self.proj.inverse(x - (y1 - y0) / n * metres, y + (x1 - x0) / n * metres)

    def rejoin(self, s: float, speed_kmh: float) -> Truck:
        """Drive straight back onto the route line at chainage `s`."""
        self.towards(*route_point(self.route, s), speed_kmh)
        self.s = s
        return self

    def no_fix(self, seconds: float, speed_kmh: float | None = None) -> Truck:
        """Lose the fix (a jammer, a dead antenna) for `seconds`, driving on if moving."""
        self.jammed = True
        if speed_kmh and self.s is not None:
            self.along(self.s + speed_kmh / 3.6 * seconds, speed_kmh)
        else:
            self.park(seconds)
        self.jammed = False
        return self

    def spoof(self, lon: float, lat: float, fixes: int) -> Truck:
        """A spoofer puts the receiver at (lon, lat) for `fixes` reports (10 s apart) while
        the truck drives on along the route."""
        assert self.s is not None
        for _ in range(fixes):
            for _ in range(9):
                self.clock += 1.0
                self.s += self.speed_kmh / 3.6
            self.clock += 1.0
            self._emit(
                "position",
                lat=round(lat, 7),
                lon=round(lon, 7),
                speed_kmh=round(self.speed_kmh, 2),
                fix="3d",
                sats=14,
                hdop=0.8,
                systems=["GPS"],
                replayed=False,
            )
        self.x, self.y = self.route.line_m.interpolate(self.s).coords[0]
        self._last_sample = None
        return self


def interleave(*trucks: Truck) -> list[Message]:
    """The trucks' messages not taken yet, in time order, as a fleet would publish them."""
    everything = [m for t in trucks for m in t.take()]
    return sorted(everything, key=lambda m: (m.ts, m.node_id, m.seq))

"""A small trajectory generator for rule tests: a synthetic world and noisy simulated trips.

The world: a 40 km route near Shenzhen (curving gently), origin and destination sites at
its ends, an allowed stop zone (service area) at km 20, a 5 km tunnel at km 8–13 and a
forbidden zone 1.5 km off the route at km 30. Everything is laid out in the route's own
metric frame and converted to lon/lat, so a lateral offset in metres is exact.

Trips: 1 fix every `dt` seconds; GNSS error is a correlated random walk scaled by HDOP
(σ ≈ 2.5 m per HDOP per axis), with occasional multipath jumps of 30–80 m lasting 1–3
fixes; no fix inside the tunnel; Doppler speed with 0.5 km/h noise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from numpy.typing import NDArray

from contract.payloads import Position
from server.geo import Geography, TransverseMercator, parse_route_collection, parse_zone_collection

LON0, LAT0 = 114.05, 22.60
ROUTE_LEN_M = 40_000.0
CORRIDOR_M = 200.0
TUNNEL = (8_000.0, 13_000.0)
STOP_ZONE_AT = 20_000.0
FORBIDDEN_AT = 30_000.0
FORBIDDEN_OFFSET_M = 1_500.0
T0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


def _centre(s: float) -> tuple[float, float]:
    """Route centre line in metres at chainage s (a gentle S-curve heading north-east)."""
    return s * 0.8 + 1500.0 * math.sin(s / 9000.0), s * 0.6


def _frame(s: float) -> tuple[float, float, float, float]:
    """(x, y, unit tangent x, unit tangent y) at chainage s."""
    x0, y0 = _centre(s - 1.0)
    x1, y1 = _centre(s + 1.0)
    n = math.hypot(x1 - x0, y1 - y0)
    x, y = _centre(s)
    return x, y, (x1 - x0) / n, (y1 - y0) / n


def point_at(s: float, offset: float = 0.0) -> tuple[float, float]:
    """Metres: the point at chainage s, `offset` metres to the left of the route."""
    x, y, tx, ty = _frame(s)
    return x - ty * offset, y + tx * offset


PROJ = TransverseMercator(LON0, LAT0)


def to_lonlat(x: float, y: float) -> tuple[float, float]:
    return PROJ.inverse(x, y)


def _rect(s0: float, s1: float, off0: float, off1: float) -> list[list[float]]:
    """A polygon along the route from chainage s0 to s1, lateral offsets off0..off1."""
    pts = [point_at(s, off0) for s in np.linspace(s0, s1, 12).tolist()]
    pts += [point_at(s, off1) for s in np.linspace(s1, s0, 12).tolist()]
    ring = [list(to_lonlat(*p)) for p in pts]
    return [*ring, ring[0]]


def _square(cx: float, cy: float, half: float) -> list[list[float]]:
    ring = [
        list(to_lonlat(cx + dx, cy + dy))
        for dx, dy in ((-half, -half), (half, -half), (half, half), (-half, half))
    ]
    return [*ring, ring[0]]


def route_geojson() -> dict[str, Any]:
    line = [
        list(to_lonlat(*point_at(s))) for s in np.arange(0.0, ROUTE_LEN_M + 1.0, 200.0).tolist()
    ]
    sx, sy = point_at(0.0)
    ex, ey = point_at(ROUTE_LEN_M)
    return {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "geometry": {"type": "LineString", "coordinates": line},
                "properties": {
                    "kind": "route",
                    "route_id": "R-SZ-DG",
                    "name": "Shenzhen yard → Dongguan port",
                    "corridor_m": CORRIDOR_M,
                },
            },
            {
                "type": "Feature",
                "geometry": {"type": "Polygon", "coordinates": [_square(sx, sy, 300.0)]},
                "properties": {
                    "kind": "site",
                    "site_id": "S-ORIG",
                    "name": "Yard",
                    "role": "origin",
                },
            },
            {
                "type": "Feature",
                "geometry": {"type": "Polygon", "coordinates": [_square(ex, ey, 300.0)]},
                "properties": {
                    "kind": "site",
                    "site_id": "S-DEST",
                    "name": "Port",
                    "role": "destination",
                },
            },
            {
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": list(to_lonlat(sx + 300.0, sy))},
                "properties": {
                    "kind": "gate",
                    "gate_id": "G-ORIG-1",
                    "site_id": "S-ORIG",
                    "name": "Yard gate",
                },
            },
            {
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": list(to_lonlat(ex - 300.0, ey))},
                "properties": {
                    "kind": "gate",
                    "gate_id": "G-DEST-1",
                    "site_id": "S-DEST",
                    "name": "Port gate",
                },
            },
        ],
    }


def zones_geojson() -> dict[str, Any]:
    fx, fy = point_at(FORBIDDEN_AT, FORBIDDEN_OFFSET_M)

    def feat(coords: list[list[float]], **props: Any) -> dict[str, Any]:
        return {
            "type": "Feature",
            "geometry": {"type": "Polygon", "coordinates": [coords]},
            "properties": props,
        }

    return {
        "type": "FeatureCollection",
        "features": [
            feat(
                _rect(STOP_ZONE_AT - 300, STOP_ZONE_AT + 300, -50, 300),
                zone_id="Z-STOP",
                name="Service area",
                kind="stop",
            ),
            feat(
                _rect(TUNNEL[0] - 50, TUNNEL[1] + 50, -60, 60),
                zone_id="Z-TUN",
                name="Tunnel",
                kind="tunnel",
            ),
            feat(_square(fx, fy, 600.0), zone_id="Z-FORB", name="Military area", kind="forbidden"),
            feat(
                _rect(0, 3000, -500, 500),
                zone_id="Z-URB",
                name="Town",
                kind="urban",
                max_speed_kmh=60,
            ),
        ],
    }


def world() -> Geography:
    rf = parse_route_collection(route_geojson(), "synthetic-route")
    zones = parse_zone_collection(zones_geojson(), "synthetic-zones")
    return Geography.from_route_files([rf], zones)


@dataclass
class TripBuilder:
    """Builds a noisy trip step by step; `positions` collects the payloads."""

    seed: int = 0
    dt: float = 2.0
    start: datetime = T0
    multipath_rate: float = 0.01
    positions: list[Position] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.seed)
        self.t = 0.0
        self.s = 0.0
        self.offset = 0.0
        self.err: NDArray[np.float64] = np.zeros(2)
        self.jump: NDArray[np.float64] = np.zeros(2)
        self.jump_left = 0

    @property
    def now(self) -> datetime:
        return self.start + timedelta(seconds=self.t)

    def _emit(self, speed_kmh: float, *, in_tunnel: bool = False, no_fix: bool = False) -> None:
        seq = len(self.positions)
        if in_tunnel or no_fix:
            self.positions.append(Position(node_id="T1", seq=seq, ts=self.now, fix="none", sats=0))
            return
        hdop = float(self.rng.uniform(0.7, 2.0))
        if self.rng.random() < 0.05:
            hdop = float(self.rng.uniform(2.5, 4.5))
        sigma = 2.5 * hdop
        self.err = 0.9 * self.err + self.rng.normal(0.0, sigma * math.sqrt(1 - 0.81), 2)
        if self.jump_left == 0 and self.rng.random() < self.multipath_rate:
            ang = self.rng.uniform(0, 2 * math.pi)
            dist = self.rng.uniform(30.0, 80.0)
            self.jump = np.array([math.cos(ang), math.sin(ang)]) * dist
            self.jump_left = int(self.rng.integers(1, 4))
        extra = self.jump if self.jump_left > 0 else np.zeros(2)
        self.jump_left = max(0, self.jump_left - 1)
        x, y = point_at(self.s, self.offset)
        lon, lat = to_lonlat(x + self.err[0] + extra[0], y + self.err[1] + extra[1])
        speed = max(0.0, speed_kmh + float(self.rng.normal(0.0, 0.5)))
        self.positions.append(
            Position(
                node_id="T1",
                seq=seq,
                ts=self.now,
                lat=lat,
                lon=lon,
                alt_m=20.0,
                speed_kmh=round(speed, 2),
                fix="3d",
                sats=int(self.rng.integers(7, 17)),
                hdop=round(hdop, 2),
                systems=["GPS", "BDS"],
            )
        )

    def drive(self, to_s: float, speed_kmh: float, offset_to: float | None = None) -> TripBuilder:
        """Drive along the route to chainage `to_s`, easing the lateral offset to `offset_to`."""
        step = speed_kmh / 3.6 * self.dt
        start_s, start_off = self.s, self.offset
        end_off = start_off if offset_to is None else offset_to
        span = max(abs(to_s - start_s), 1e-9)
        while self.s < to_s:
            self.s = min(to_s, self.s + step)
            self.offset = start_off + (end_off - start_off) * (self.s - start_s) / span
            self.t += self.dt
            in_tunnel = TUNNEL[0] <= self.s <= TUNNEL[1] and abs(self.offset) < 50
            self._emit(speed_kmh, in_tunnel=in_tunnel)
        return self

    def stay(self, duration_s: float, *, no_fix: bool = False) -> TripBuilder:
        """Stand still (or lose the fix while standing) for `duration_s`."""
        end = self.t + duration_s
        while self.t < end:
            self.t += self.dt
            self._emit(abs(float(self.rng.normal(0.0, 0.3))), no_fix=no_fix)
        return self

    def leave_town(self) -> TripBuilder:
        """Wait in the origin site, then drive through the town zone under its 60 km/h."""
        return self.stay(30.0).drive(3_300.0, 45.0)

    def off_route(self, offset_m: float, distance_m: float, speed_kmh: float) -> TripBuilder:
        """Drive `distance_m` along while sidestepping `offset_m` to the side (a parallel road)."""
        return self.drive(self.s + distance_m, speed_kmh, offset_to=offset_m)

    def move_to_offset(self, offset_m: float, speed_kmh: float) -> TripBuilder:
        """Drive straight sideways to `offset_m` (a turn-off), chainage unchanged."""
        step = speed_kmh / 3.6 * self.dt
        while abs(self.offset - offset_m) > 1e-6:
            delta = offset_m - self.offset
            self.offset += math.copysign(min(step, abs(delta)), delta)
            self.t += self.dt
            self._emit(speed_kmh)
        return self


def clean_trip(seed: int) -> list[Position]:
    """A full trip with no incident: sites, a short traffic stop, the tunnel, a rest stop."""
    b = TripBuilder(seed=seed)
    rng = np.random.default_rng(seed + 1000)
    b.stay(60.0)
    b.drive(3_300.0, 45.0)  # through town, under its 60 km/h
    b.drive(6_000.0, float(rng.uniform(70, 85)))
    b.stay(float(rng.uniform(60, 180)))  # traffic jam / toll booth, outside any stop zone
    b.drive(STOP_ZONE_AT, float(rng.uniform(70, 85)))
    b.stay(1_200.0)  # rest in the service area (an allowed stop zone)
    b.drive(ROUTE_LEN_M, float(rng.uniform(70, 85)))
    b.stay(120.0)  # in the destination site
    return b.positions

"""Route and zone files (GeoJSON, [lon, lat] WGS-84) in a local metric frame.

A route file is a FeatureCollection whose route is the LineString Feature with
`properties.kind == "route"`; a zones file is a FeatureCollection of Polygons with
`properties.kind` in forbidden/stop/tunnel/urban. Positions are handled in a local
equirectangular projection around the route's first point (metres east/north),
accurate to well under a metre over the tens of kilometres of a trip.
"""

from __future__ import annotations

import json
import math
from bisect import bisect_right
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devices.geodesy import EARTH_RADIUS_M


@dataclass(frozen=True)
class LocalFrame:
    lat0: float
    lon0: float

    def to_xy(self, lon: float, lat: float) -> tuple[float, float]:
        x = math.radians(lon - self.lon0) * EARTH_RADIUS_M * math.cos(math.radians(self.lat0))
        y = math.radians(lat - self.lat0) * EARTH_RADIUS_M
        return x, y

    def to_lonlat(self, x: float, y: float) -> tuple[float, float]:
        lat = self.lat0 + math.degrees(y / EARTH_RADIUS_M)
        lon = self.lon0 + math.degrees(x / (EARTH_RADIUS_M * math.cos(math.radians(self.lat0))))
        return lon, lat


@dataclass(frozen=True)
class Zone:
    zone_id: str
    name: str
    kind: str
    rings: tuple[tuple[tuple[float, float], ...], ...]  # exterior first, in local metres

    def contains(self, x: float, y: float) -> bool:
        inside = _in_ring(x, y, self.rings[0])
        return inside and not any(_in_ring(x, y, hole) for hole in self.rings[1:])


def _in_ring(x: float, y: float, ring: tuple[tuple[float, float], ...]) -> bool:
    inside = False
    j = len(ring) - 1
    for i in range(len(ring)):
        xi, yi = ring[i]
        xj, yj = ring[j]
        if (yi > y) != (yj > y) and x < (xj - xi) * (y - yi) / (yj - yi) + xi:
            inside = not inside
        j = i
    return inside


class Route:
    """The route line with distance-along-route lookups."""

    def __init__(self, route_id: str, coords: list[tuple[float, float]]) -> None:
        if len(coords) < 2:
            raise ValueError(f"route {route_id!r} needs at least two points")
        self.route_id = route_id
        self.frame = LocalFrame(lat0=coords[0][1], lon0=coords[0][0])
        self.points = [self.frame.to_xy(lon, lat) for lon, lat in coords]
        self.cumulative = [0.0]
        for (x1, y1), (x2, y2) in zip(self.points, self.points[1:], strict=False):
            self.cumulative.append(self.cumulative[-1] + math.hypot(x2 - x1, y2 - y1))
        self.length_m = self.cumulative[-1]

    def at(self, distance_m: float) -> tuple[float, float, float]:
        """(x, y, course in degrees from north) at `distance_m` along the route."""
        d = min(max(distance_m, 0.0), self.length_m)
        i = min(bisect_right(self.cumulative, d) - 1, len(self.points) - 2)
        while i < len(self.points) - 2 and self.cumulative[i + 1] - self.cumulative[i] == 0:
            i += 1
        (x1, y1), (x2, y2) = self.points[i], self.points[i + 1]
        seg = self.cumulative[i + 1] - self.cumulative[i]
        t = 0.0 if seg == 0 else (d - self.cumulative[i]) / seg
        course = math.degrees(math.atan2(x2 - x1, y2 - y1)) % 360.0
        return x1 + (x2 - x1) * t, y1 + (y2 - y1) * t, course

    def distance_to_line(self, x: float, y: float) -> float:
        best = math.inf
        for (x1, y1), (x2, y2) in zip(self.points, self.points[1:], strict=False):
            dx, dy = x2 - x1, y2 - y1
            seg2 = dx * dx + dy * dy
            t = 0.0 if seg2 == 0 else max(0.0, min(1.0, ((x - x1) * dx + (y - y1) * dy) / seg2))
            best = min(best, math.hypot(x - (x1 + t * dx), y - (y1 + t * dy)))
        return best


def _features(path: Path) -> list[dict[str, Any]]:
    data = json.loads(path.read_text(encoding="utf-8"))
    if data.get("type") != "FeatureCollection":
        raise ValueError(f"{path}: not a GeoJSON FeatureCollection")
    features: list[dict[str, Any]] = data.get("features", [])
    return features


def load_route(path: Path) -> Route:
    for feature in _features(path):
        props = feature.get("properties") or {}
        geometry = feature.get("geometry") or {}
        if props.get("kind") == "route" and geometry.get("type") == "LineString":
            coords = [(float(c[0]), float(c[1])) for c in geometry["coordinates"]]
            return Route(str(props.get("route_id", "route")), coords)
    raise ValueError(f"{path}: no LineString feature with properties.kind == 'route'")


def load_zones(path: Path, frame: LocalFrame) -> list[Zone]:
    zones: list[Zone] = []
    for feature in _features(path):
        props = feature.get("properties") or {}
        geometry = feature.get("geometry") or {}
        polygons: list[list[list[list[float]]]] = []
        if geometry.get("type") == "Polygon":
            polygons = [geometry["coordinates"]]
        elif geometry.get("type") == "MultiPolygon":
            polygons = geometry["coordinates"]
        for rings in polygons:
            local = tuple(tuple(frame.to_xy(c[0], c[1]) for c in ring) for ring in rings)
            zones.append(
                Zone(
                    str(props.get("zone_id", "")),
                    str(props.get("name", "")),
                    str(props.get("kind", "")),
                    local,
                )
            )
    return zones

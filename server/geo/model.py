"""The configured geography: routes with their corridors, sites, gates and zones."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Final, Literal

import shapely
from shapely.geometry import LineString, Point, Polygon

from devices.geodesy import M_PER_DEG_LAT
from server.geo.grid import SegmentGrid
from server.geo.projection import FloatArray, TransverseMercator

ZoneKind = Literal["forbidden", "stop", "tunnel", "urban"]
ZONE_KINDS: Final[tuple[ZoneKind, ...]] = ("forbidden", "stop", "tunnel", "urban")
SiteRole = Literal["origin", "destination"]


class LocalFrame:
    """An equirectangular tangent plane around a small area (a zone or a site).

    Used only for areas a few km across, where its scale error (tan(lat)·Δlat) stays under
    1e-3 — centimetres on distances of tens of metres to the area's edge.
    """

    __slots__ = ("_kx", "lat0", "lon0")

    def __init__(self, lon0: float, lat0: float) -> None:
        self.lon0 = lon0
        self.lat0 = lat0
        self._kx = M_PER_DEG_LAT * math.cos(math.radians(lat0))

    def forward(self, lon: float, lat: float) -> tuple[float, float]:
        return (lon - self.lon0) * self._kx, (lat - self.lat0) * M_PER_DEG_LAT

    def polygon(self, poly: Polygon) -> Polygon:
        """`poly` (lon/lat) in this frame's metres."""

        def to_m(coords: FloatArray) -> FloatArray:
            out = coords.copy()
            out[:, 0] = (coords[:, 0] - self.lon0) * self._kx
            out[:, 1] = (coords[:, 1] - self.lat0) * M_PER_DEG_LAT
            return out

        result: Polygon = shapely.transform(poly, to_m)
        return result


def _frame_for(poly: Polygon) -> LocalFrame:
    c = poly.centroid
    return LocalFrame(c.x, c.y)


@dataclass(frozen=True, eq=False, slots=True)
class Site:
    """A supervised site (yard, port, bonded warehouse) with its fence polygon."""

    site_id: str
    name: str
    polygon: Polygon = field(repr=False)
    source: str = ""
    frame: LocalFrame = field(init=False, repr=False)
    polygon_m: Polygon = field(init=False, repr=False)

    def __post_init__(self) -> None:
        frame = _frame_for(self.polygon)
        object.__setattr__(self, "frame", frame)
        polygon_m = frame.polygon(self.polygon)
        shapely.prepare(polygon_m)
        object.__setattr__(self, "polygon_m", polygon_m)
        shapely.prepare(self.polygon)

    def same_as(self, other: Site) -> bool:
        return self.name == other.name and self.polygon.equals_exact(other.polygon, 1e-9)

    def distance_outside_m(self, lon: float, lat: float) -> float:
        """Metres from the point to the site's fence; 0 inside."""
        x, y = self.frame.forward(lon, lat)
        return float(self.polygon_m.distance(Point(x, y)))


@dataclass(frozen=True, slots=True)
class Gate:
    """A checkpoint gate (卡口) of a site."""

    gate_id: str
    site_id: str
    name: str
    lon: float
    lat: float
    source: str = ""


@dataclass(frozen=True, eq=False, slots=True)
class Zone:
    """A zone: forbidden, allowed stop, tunnel or urban, with an optional speed limit."""

    zone_id: str
    name: str
    kind: ZoneKind
    polygon: Polygon = field(repr=False)
    max_speed_kmh: float | None = None
    source: str = ""
    frame: LocalFrame = field(init=False, repr=False)
    polygon_m: Polygon = field(init=False, repr=False)

    def __post_init__(self) -> None:
        frame = _frame_for(self.polygon)
        object.__setattr__(self, "frame", frame)
        object.__setattr__(self, "polygon_m", frame.polygon(self.polygon))

    def depth_m(self, lon: float, lat: float) -> float:
        """Signed metres from the zone's boundary: positive inside, negative outside."""
        x, y = self.frame.forward(lon, lat)
        pt = Point(x, y)
        d = float(self.polygon_m.boundary.distance(pt))
        return d if self.polygon_m.contains(pt) else -d


@dataclass(frozen=True, eq=False, slots=True)
class Route:
    """A declared route: its line, corridor half-width and end sites.

    `line_m` is the line in the route's own transverse Mercator frame (`projection`).
    """

    route_id: str
    name: str
    corridor_m: float
    line: LineString = field(repr=False)
    origin_site_id: str | None = None
    destination_site_id: str | None = None
    source: str = ""
    projection: TransverseMercator = field(init=False, repr=False)
    line_m: LineString = field(init=False, repr=False)
    _grid: list[SegmentGrid] = field(init=False, repr=False, default_factory=list)

    def __post_init__(self) -> None:
        xmin, ymin, xmax, ymax = self.line.bounds
        proj = TransverseMercator((xmin + xmax) / 2.0, (ymin + ymax) / 2.0)
        object.__setattr__(self, "projection", proj)
        coords = shapely.get_coordinates(self.line)
        xs, ys = proj.forward_many(coords[:, 0], coords[:, 1])
        line_m = shapely.linestrings(xs, ys)
        shapely.prepare(line_m)
        object.__setattr__(self, "line_m", line_m)

    @property
    def length_m(self) -> float:
        return float(self.line_m.length)

    def segment_grid(self) -> SegmentGrid:
        """The route's segment grid, built on first use (a trip only asks its own route)."""
        if not self._grid:
            coords = shapely.get_coordinates(self.line_m)
            self._grid.append(SegmentGrid(coords[:, 0].tolist(), coords[:, 1].tolist()))
        return self._grid[0]

    def distance_m(self, lon: float, lat: float) -> float:
        """Metres from the point to the route line (scale of the projection divided out)."""
        proj = self.projection
        x, y = proj.forward(lon, lat)
        d = self.segment_grid().distance(x, y)
        if d is None:
            d = float(self.line_m.distance(Point(x, y)))
        return d / proj.scale_at(x)

    def corridor(self, corridor_m: float | None = None) -> Polygon:
        """The corridor polygon (lon/lat): the line buffered in metres by `corridor_m`."""
        width = self.corridor_m if corridor_m is None else corridor_m
        buffered = self.line_m.buffer(width, quad_segs=8)
        proj = self.projection

        def to_lonlat(coords: FloatArray) -> FloatArray:
            lons, lats = proj.inverse_many(coords[:, 0], coords[:, 1])
            out = coords.copy()
            out[:, 0] = lons
            out[:, 1] = lats
            return out

        result: Polygon = shapely.transform(buffered, to_lonlat)
        return result

"""`Geography`: every route, site, gate and zone, indexed for per-fix look-ups.

Zones and sites sit in shapely 2 STRtrees queried with a predicate (GEOS prepares the
candidate geometries), so a look-up costs microseconds whatever their number. A trip only
ever measures against its own route, so routes are kept in a dict, each with its line in
its own metric frame (see `server.geo.projection`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from shapely.geometry import Point, mapping

from devices.geodesy import M_PER_DEG_LAT
from server.geo.grid import BoxGrid
from server.geo.loader import GeoConfigError, RouteFile, load_all
from server.geo.model import Gate, Route, Site, Zone, ZoneKind
from server.geo.projection import FloatArray

log = logging.getLogger(__name__)


class Geography:
    """The configured geography, immutable once built."""

    def __init__(
        self,
        routes: Iterable[Route],
        sites: Iterable[Site] = (),
        gates: Iterable[Gate] = (),
        zones: Iterable[Zone] = (),
    ) -> None:
        errors: list[str] = []
        self._routes: dict[str, Route] = {}
        for route in routes:
            other = self._routes.get(route.route_id)
            if other is not None:
                errors.append(
                    f"{route.source}: duplicate route_id {route.route_id!r} "
                    f"(also in {other.source})"
                )
                continue
            self._routes[route.route_id] = route
        self._sites: dict[str, Site] = {}
        for site in sites:
            known = self._sites.get(site.site_id)
            if known is not None:
                if not known.same_as(site):
                    errors.append(
                        f"{site.source}: site {site.site_id!r} differs from its definition in "
                        f"{known.source} — give it one shape and name, or another site_id"
                    )
                continue
            self._sites[site.site_id] = site
        self._gates: dict[str, Gate] = {}
        for gate in gates:
            known_gate = self._gates.get(gate.gate_id)
            if known_gate is not None:
                same = (known_gate.site_id, known_gate.lon, known_gate.lat, known_gate.name)
                if same != (gate.site_id, gate.lon, gate.lat, gate.name):
                    errors.append(
                        f"{gate.source}: gate {gate.gate_id!r} differs from its definition in "
                        f"{known_gate.source}"
                    )
                continue
            if gate.site_id not in self._sites:
                errors.append(
                    f"{gate.source}: gate {gate.gate_id!r} names unknown site {gate.site_id!r}"
                )
                continue
            self._gates[gate.gate_id] = gate
        self._zones: dict[str, Zone] = {}
        for zone in zones:
            known_zone = self._zones.get(zone.zone_id)
            if known_zone is not None:
                errors.append(
                    f"{zone.source}: duplicate zone_id {zone.zone_id!r} "
                    f"(also in {known_zone.source})"
                )
                continue
            self._zones[zone.zone_id] = zone
        for route in self._routes.values():
            for role, sid in (
                ("origin", route.origin_site_id),
                ("destination", route.destination_site_id),
            ):
                if sid is not None and sid not in self._sites:
                    errors.append(
                        f"{route.source}: route {route.route_id!r} {role} site {sid!r} unknown"
                    )
        if errors:
            raise GeoConfigError(errors)
        self._zone_list: list[Zone] = list(self._zones.values())
        self._zone_tree = shapely.STRtree([z.polygon for z in self._zone_list])
        self._zone_grid = BoxGrid([z.polygon for z in self._zone_list])
        self._site_list: list[Site] = list(self._sites.values())
        self._site_tree = shapely.STRtree([s.polygon for s in self._site_list])
        log.info(
            "geography loaded: %s routes, %s sites, %s gates, %s zones",
            len(self._routes),
            len(self._sites),
            len(self._gates),
            len(self._zones),
        )

    @classmethod
    def from_route_files(
        cls, route_files: Iterable[RouteFile], zones: Iterable[Zone] = ()
    ) -> Geography:
        files = list(route_files)
        return cls(
            routes=[f.route for f in files],
            sites=[s for f in files for s in f.sites],
            gates=[g for f in files for g in f.gates],
            zones=zones,
        )

    @classmethod
    def from_files(
        cls, route_paths: Iterable[Path | str], zone_paths: Iterable[Path | str] = ()
    ) -> Geography:
        """Load route and zone GeoJSON files; `GeoConfigError` lists every problem."""
        route_files, zones = load_all(route_paths, zone_paths)
        return cls.from_route_files(route_files, zones)

    # ----- look-ups by id -------------------------------------------------------------
    def route(self, route_id: str) -> Route:
        try:
            return self._routes[route_id]
        except KeyError:
            raise KeyError(f"unknown route_id {route_id!r}") from None

    def site(self, site_id: str) -> Site:
        try:
            return self._sites[site_id]
        except KeyError:
            raise KeyError(f"unknown site_id {site_id!r}") from None

    def gate(self, gate_id: str) -> Gate:
        try:
            return self._gates[gate_id]
        except KeyError:
            raise KeyError(f"unknown gate_id {gate_id!r}") from None

    def zone(self, zone_id: str) -> Zone:
        try:
            return self._zones[zone_id]
        except KeyError:
            raise KeyError(f"unknown zone_id {zone_id!r}") from None

    @property
    def routes(self) -> Sequence[Route]:
        return list(self._routes.values())

    @property
    def sites(self) -> Sequence[Site]:
        return list(self._site_list)

    @property
    def gates(self) -> Sequence[Gate]:
        return list(self._gates.values())

    @property
    def zones(self) -> Sequence[Zone]:
        return list(self._zone_list)

    # ----- per-point queries ------------------------------------------------------------
    def distance_to_route_m(self, route_id: str, lon: float, lat: float) -> float:
        """Metres from (lon, lat) to the route line."""
        return self.route(route_id).distance_m(lon, lat)

    def distances_to_route_m(
        self, route_id: str, lons: Sequence[float] | FloatArray, lats: Sequence[float] | FloatArray
    ) -> FloatArray:
        """Batch form of `distance_to_route_m`."""
        route = self.route(route_id)
        xs, ys = route.projection.forward_many(np.asarray(lons, float), np.asarray(lats, float))
        d = shapely.distance(route.line_m, shapely.points(xs, ys))
        result: FloatArray = np.asarray(d, dtype=np.float64) / route.projection.scale_at_many(xs)
        return result

    def zones_at(self, lon: float, lat: float, kind: ZoneKind | None = None) -> list[Zone]:
        """The zones containing (lon, lat) (boundary included), optionally of one kind."""
        zones = [self._zone_list[i] for i in self._zone_grid.containing(lon, lat)]
        if kind is not None:
            zones = [z for z in zones if z.kind == kind]
        return zones

    def zones_at_many(
        self, lons: Sequence[float] | FloatArray, lats: Sequence[float] | FloatArray
    ) -> list[list[Zone]]:
        """Batch form of `zones_at`: one list per point."""
        pts = shapely.points(np.asarray(lons, float), np.asarray(lats, float))
        out: list[list[Zone]] = [[] for _ in range(len(pts))]
        point_idx, zone_idx = self._zone_tree.query(pts, predicate="intersects")
        for p, z in zip(point_idx.tolist(), zone_idx.tolist(), strict=True):
            out[p].append(self._zone_list[z])
        return out

    def zones_near(
        self, lon: float, lat: float, radius_m: float, kind: ZoneKind | None = None
    ) -> list[Zone]:
        """Zones within about `radius_m` of (lon, lat) (never fewer: the search is generous)."""
        deg = radius_m / (M_PER_DEG_LAT * max(math.cos(math.radians(lat)), 0.01))
        hits = self._zone_tree.query(Point(lon, lat), predicate="dwithin", distance=deg)
        zones = [self._zone_list[i] for i in hits]
        if kind is not None:
            zones = [z for z in zones if z.kind == kind]
        return zones

    def site_at(self, lon: float, lat: float) -> Site | None:
        """The site whose fence contains (lon, lat), if any."""
        hits = self._site_tree.query(Point(lon, lat), predicate="intersects")
        return self._site_list[int(hits[0])] if len(hits) else None

    def inside_site(self, site_id: str, lon: float, lat: float, margin_m: float = 0.0) -> bool:
        """True when (lon, lat) lies in the site, or within `margin_m` metres of its fence."""
        site = self.site(site_id)
        if shapely.contains_xy(site.polygon, lon, lat):
            return True
        return margin_m > 0.0 and site.distance_outside_m(lon, lat) <= margin_m

    # ----- GeoJSON export (REST /routes, /zones, /gates) --------------------------------
    def routes_geojson(self, with_corridors: bool = True) -> dict[str, Any]:
        """Routes (lines, and corridor polygons) with the sites they join."""
        features: list[dict[str, Any]] = []
        for r in self._routes.values():
            props = {
                "kind": "route",
                "route_id": r.route_id,
                "name": r.name,
                "corridor_m": r.corridor_m,
                "origin_site_id": r.origin_site_id,
                "destination_site_id": r.destination_site_id,
                "length_m": round(r.length_m, 1),
            }
            features.append(_feature(mapping(r.line), props))
            if with_corridors:
                corridor_props = {
                    "kind": "corridor",
                    "route_id": r.route_id,
                    "corridor_m": r.corridor_m,
                }
                features.append(_feature(mapping(r.corridor()), corridor_props))
        for s in self._site_list:
            site_props = {"kind": "site", "site_id": s.site_id, "name": s.name}
            features.append(_feature(mapping(s.polygon), site_props))
        return {"type": "FeatureCollection", "features": features}

    def zones_geojson(self) -> dict[str, Any]:
        features = []
        for z in self._zone_list:
            props: dict[str, Any] = {"zone_id": z.zone_id, "name": z.name, "kind": z.kind}
            if z.max_speed_kmh is not None:
                props["max_speed_kmh"] = z.max_speed_kmh
            features.append(_feature(mapping(z.polygon), props))
        return {"type": "FeatureCollection", "features": features}

    def gates_geojson(self) -> dict[str, Any]:
        features = [
            _feature(
                {"type": "Point", "coordinates": [g.lon, g.lat]},
                {"kind": "gate", "gate_id": g.gate_id, "site_id": g.site_id, "name": g.name},
            )
            for g in self._gates.values()
        ]
        return {"type": "FeatureCollection", "features": features}


def _feature(geometry: Any, properties: dict[str, Any]) -> dict[str, Any]:
    geom = _plain(geometry)
    return {"type": "Feature", "geometry": geom, "properties": properties}


def _plain(value: Any) -> Any:
    """shapely's `mapping` gives tuples; JSON wants lists."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value

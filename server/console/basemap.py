"""The console map's offline background: land and water from Natural Earth, no tiles.

Without a configured tile server the live map would show the routes on a plain colour.
This draws them in their geography instead: the land of Natural Earth's 1:10m land
polygons (public domain), read from the `world-atlas` package the console vendors
(`server/console/vendor`, installed by `make console-assets`: TopoJSON), clipped to the
served region — the configured geography's extent and `MARGIN_DEG` around it — and
served as GeoJSON at `GET /api/v1/console/basemap`. The sea is the map's own background
colour. Nothing is fetched at run time.

The TopoJSON is decoded here (quantized, delta-encoded arcs; a negative arc index `~i`
is arc `i` reversed — the TopoJSON specification, "2.1.1 Arcs" and "2.2 Arc indexes").
"""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from typing import Any, Final

import numpy as np
import shapely
from fastapi import APIRouter, Request
from shapely.geometry import MultiPolygon, Polygon, mapping

from contract.version import API_PREFIX
from server.api.errors import ApiError
from server.console.config import ConsoleSettings
from server.console.web import vendor_paths
from server.geo import Geography

log = logging.getLogger(__name__)

router = APIRouter(prefix=f"{API_PREFIX}/console", tags=["console"])

#: The land polygons: Natural Earth 1:10m, as world-atlas packs them.
LAND_FILE: Final = "land-10m.json"
#: Degrees of land and sea shown around the geography.
MARGIN_DEG: Final = 1.0
#: Simplification tolerance in degrees (≈ 50 m: below what 1:10m draws).
SIMPLIFY_DEG: Final = 0.0005
ATTRIBUTION: Final = "Natural Earth"

FloatArray = np.ndarray[Any, np.dtype[np.float64]]


class BasemapError(ValueError):
    """The land file is missing or is not the TopoJSON expected."""


def region_of(geography: Geography, margin_deg: float = MARGIN_DEG) -> tuple[float, ...]:
    """(west, south, east, north) of every route, zone and gate, widened by `margin_deg`."""
    shapes = [r.line for r in geography.routes] + [z.polygon for z in geography.zones]
    shapes += [shapely.Point(g.lon, g.lat) for g in geography.gates]
    if not shapes:
        raise BasemapError("the geography is empty: no region to draw")
    west, south, east, north = shapely.total_bounds(shapes)
    return (
        max(-180.0, float(west) - margin_deg),
        max(-90.0, float(south) - margin_deg),
        min(180.0, float(east) + margin_deg),
        min(90.0, float(north) + margin_deg),
    )


class Arcs:
    """The topology's arcs decoded at once (numpy): points, and each arc's bounds."""

    def __init__(self, topology: dict[str, Any]) -> None:
        raw = topology["arcs"]
        lengths = np.fromiter((len(arc) for arc in raw), dtype=np.int64, count=len(raw))
        flat = np.fromiter(
            (v for arc in raw for point in arc for v in point[:2]),
            dtype=float,
            count=int(lengths.sum()) * 2,
        ).reshape(-1, 2)
        self.starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
        self.ends = self.starts + lengths
        transform = topology.get("transform")
        if transform is not None:  # quantized: each arc's points are deltas from its first
            total = np.cumsum(flat, axis=0)
            before = np.vstack(([0.0, 0.0], total))[self.starts]
            flat = (total - np.repeat(before, lengths, axis=0)) * transform["scale"]
            flat += transform["translate"]
        self.points = flat
        self.low = np.minimum.reduceat(flat, self.starts, axis=0)
        self.high = np.maximum.reduceat(flat, self.starts, axis=0)

    def arc(self, index: int) -> FloatArray:
        i = index if index >= 0 else ~index
        points = self.points[self.starts[i] : self.ends[i]]
        return points if index >= 0 else points[::-1]

    def ring(self, indexes: list[int]) -> FloatArray:
        # each arc starts where the one before it ended
        parts = [self.arc(index)[(1 if n else 0) :] for n, index in enumerate(indexes)]
        return np.concatenate(parts)

    def outside(self, indexes: list[int], region: tuple[float, ...]) -> bool:
        """Whether the arcs `indexes` lie wholly outside `region` (by their bounds)."""
        ids = [i if i >= 0 else ~i for i in indexes]
        (west, south), (east, north) = self.low[ids].min(axis=0), self.high[ids].max(axis=0)
        return bool(east < region[0] or west > region[2] or north < region[1] or south > region[3])


def _polygons(geometry: dict[str, Any]) -> list[list[list[int]]]:
    kind = geometry.get("type")
    if kind == "Polygon":
        return [geometry["arcs"]]
    if kind == "MultiPolygon":
        return list(geometry["arcs"])
    if kind == "GeometryCollection":
        return [p for g in geometry["geometries"] for p in _polygons(g)]
    return []


def _polygons_of(geometry: Any) -> list[Polygon]:
    """The polygons of a polygon, a multi-polygon or a collection (lines and points left out)."""
    if isinstance(geometry, Polygon):
        return [] if geometry.is_empty else [geometry]
    if hasattr(geometry, "geoms"):
        return [p for part in geometry.geoms for p in _polygons_of(part)]
    return []


def land_in(path: Path, region: tuple[float, ...]) -> MultiPolygon:
    """The land of the TopoJSON file `path` inside `region` (west, south, east, north)."""
    try:
        topology = json.loads(path.read_text(encoding="utf-8"))
        land = topology["objects"]["land"]
    except (OSError, ValueError, KeyError) as err:
        raise BasemapError(f"{path}: not world-atlas land TopoJSON ({err})") from err
    arcs = Arcs(topology)
    west, south, east, north = region
    kept: list[Polygon] = []
    for rings in _polygons(land):
        if arcs.outside(rings[0], region):
            continue  # nowhere near: not built at all
        outer = arcs.ring(rings[0])
        polygon = Polygon(outer, [arcs.ring(r) for r in rings[1:]])
        # clipped first: repairing a continent whole takes seconds, its corner nothing
        clipped = shapely.make_valid(shapely.clip_by_rect(polygon, west, south, east, north))
        kept += _polygons_of(clipped)
    simple = shapely.simplify(shapely.union_all(kept), SIMPLIFY_DEG, preserve_topology=True)
    return MultiPolygon(_polygons_of(shapely.make_valid(simple)))


def basemap_geojson(path: Path, geography: Geography) -> dict[str, Any]:
    region = region_of(geography)
    land = land_in(path, region)
    return {
        "type": "FeatureCollection",
        "bbox": list(region),
        "attribution": ATTRIBUTION,
        "features": [
            {
                "type": "Feature",
                "properties": {"kind": "land", "source": "Natural Earth 1:10m land"},
                "geometry": mapping(land),
            }
        ],
    }


_cache: dict[tuple[Path, int], dict[str, Any]] = {}
_cache_lock = threading.Lock()


def land_file(settings: ConsoleSettings) -> Path:
    return vendor_paths(settings)["world-atlas"] / LAND_FILE


@router.get("/basemap")
def basemap(request: Request) -> dict[str, Any]:
    """Land of the served region as GeoJSON (the sea is the map's background)."""
    settings: ConsoleSettings = request.app.state.console_settings
    geography: Geography = request.app.state.services.geography
    path = land_file(settings)
    key = (path, id(geography))
    with _cache_lock:
        found = _cache.get(key)
        if found is None:
            try:
                found = basemap_geojson(path, geography)
            except BasemapError as err:
                log.warning("no offline map background: %s", err)
                raise ApiError(503, "unavailable", str(err)) from err
            _cache[key] = found
    return found

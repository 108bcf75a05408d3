"""Geography and rules benchmark: index build time and full `evaluate` rate per fix.

10,000 synthetic routes (random 200 km walks across eastern China, a vertex every 500 m)
and 10,000 zones are loaded; one trip's noisy fixes run through `server.rules.evaluate`.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
from shapely.geometry import LineString, Polygon

from server.geo import Geography, Route, Zone
from server.rules import DEFAULT_PROFILES, TripContext, TripState, evaluate
from server.rules.inputs import Fix

N_ROUTES = 10_000
N_ZONES = 10_000
KINDS = ("forbidden", "stop", "tunnel", "urban")


def _routes(rng: np.random.Generator) -> list[Route]:
    routes = []
    for i in range(N_ROUTES):
        lon0, lat0 = rng.uniform(105.0, 122.0), rng.uniform(22.0, 40.0)
        heading = np.cumsum(rng.normal(0.0, 0.05, 400)) + rng.uniform(0, 2 * math.pi)
        step = 500.0 / 111_000.0
        lons = lon0 + np.cumsum(np.cos(heading) * step / math.cos(math.radians(lat0)))
        lats = lat0 + np.cumsum(np.sin(heading) * step)
        routes.append(Route(f"R{i}", f"route {i}", 300.0, LineString(np.c_[lons, lats])))
    return routes


def _zones(rng: np.random.Generator, near: Route) -> list[Zone]:
    zones = []
    coords = np.asarray(near.line.coords)
    for i in range(N_ZONES):
        if i < 200:  # some along the measured route so the zone rules have work
            lon0, lat0 = coords[rng.integers(0, len(coords))]
        else:
            lon0, lat0 = rng.uniform(105.0, 122.0), rng.uniform(22.0, 40.0)
        r = rng.uniform(0.002, 0.01)
        ang = np.linspace(0, 2 * math.pi, 9)[:-1]
        poly = Polygon(np.c_[lon0 + r * np.cos(ang), lat0 + r * np.sin(ang)])
        kind = KINDS[i % 4]
        zones.append(Zone(f"Z{i}", f"zone {i}", kind, poly, 60.0 if kind == "urban" else None))  # type: ignore[arg-type]
    return zones


def _fixes(route: Route, rng: np.random.Generator, n: int) -> list[Fix]:
    from datetime import UTC, datetime, timedelta

    t0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
    length = route.line_m.length
    out = []
    for i in range(n):
        p = route.line_m.interpolate(min(i * 22.0, length))
        x = p.x + rng.normal(0, 4)
        y = p.y + rng.normal(0, 4)
        lon, lat = route.projection.inverse(x, y)
        out.append(
            Fix(t0 + timedelta(seconds=i), lon, lat, "3d", 79.0 + rng.normal(0, 0.5), None, 12, 1.1)
        )
    return out


def run() -> dict[str, dict[str, Any]]:
    rng = np.random.default_rng(42)
    t = time.perf_counter()
    routes = _routes(rng)
    zones = _zones(rng, routes[0])
    geo = Geography(routes, [], [], zones)
    build_s = time.perf_counter() - t
    ctx = TripContext(geo, "R0", DEFAULT_PROFILES["general"], trip_id="bench")
    fixes = _fixes(routes[0], rng, 8_000)
    state = TripState()
    t = time.perf_counter()
    for fix in fixes:
        state, _ = evaluate(state, fix, ctx)
    rate = len(fixes) / (time.perf_counter() - t)
    return {
        "server.geo_checks_per_s": {
            "value": rate,
            "unit": "1/s",
            "target": None,
            "better": "higher",
        },
        "server.geo_index_build_s": {
            "value": build_s,
            "unit": "s",
            "target": None,
            "better": "lower",
        },
    }


if __name__ == "__main__":
    for name, m in run().items():
        print(f"{name:32s} {m['value']:12.2f} {m['unit']}")

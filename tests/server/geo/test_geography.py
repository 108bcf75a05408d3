"""Geography: loading with clear errors, metric accuracy, look-ups, batch forms, export."""

from __future__ import annotations

import copy
import itertools
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from server.geo import (
    GeoConfigError,
    Geography,
    TransverseMercator,
    parse_route_collection,
    parse_zone_collection,
)
from tests.server.rules.trajectory import (
    CORRIDOR_M,
    point_at,
    route_geojson,
    to_lonlat,
    world,
    zones_geojson,
)


@pytest.fixture(scope="module")
def geo() -> Geography:
    return world()


def test_distance_to_route_matches_true_offset(geo: Geography) -> None:
    for s in (1_000.0, 17_300.0, 33_000.0):
        for off in (0.0, 50.0, 180.0, -420.0, 2_000.0):
            lon, lat = to_lonlat(*point_at(s, off))
            # the line is a polyline with 200 m vertices: its chord error on this curve < 0.2 m
            assert geo.distance_to_route_m("R-SZ-DG", lon, lat) == pytest.approx(abs(off), abs=0.5)


def test_batch_forms_agree_with_scalar(geo: Geography) -> None:
    pts = [
        to_lonlat(*point_at(s, off))
        for s in (500.0, 10_000.0, 30_000.0)
        for off in (0.0, 300.0, 1_500.0)
    ]
    lons, lats = np.array([p[0] for p in pts]), np.array([p[1] for p in pts])
    batch = geo.distances_to_route_m("R-SZ-DG", lons, lats)
    scalar = [geo.distance_to_route_m("R-SZ-DG", lo, la) for lo, la in pts]
    assert batch == pytest.approx(scalar, abs=1e-6)
    assert [[z.zone_id for z in zs] for zs in geo.zones_at_many(lons, lats)] == [
        [z.zone_id for z in geo.zones_at(lo, la)] for lo, la in pts
    ]


def test_zone_site_lookups(geo: Geography) -> None:
    lon, lat = to_lonlat(*point_at(10_000.0))
    assert [z.zone_id for z in geo.zones_at(lon, lat)] == ["Z-TUN"]
    assert geo.zones_at(*to_lonlat(*point_at(10_000.0, 500.0))) == []
    assert geo.zone("Z-URB").max_speed_kmh == 60
    s0 = to_lonlat(*point_at(0.0))
    site = geo.site_at(*s0)
    assert site is not None
    assert site.site_id == "S-ORIG"
    assert geo.inside_site("S-ORIG", *s0)
    assert not geo.inside_site("S-DEST", *s0)
    near = to_lonlat(*point_at(0.0, 380.0))  # ~23 m outside the fence
    assert not geo.inside_site("S-ORIG", *near)
    assert geo.inside_site("S-ORIG", *near, margin_m=50.0)
    assert geo.zone("Z-TUN").depth_m(lon, lat) == pytest.approx(60.0, abs=1.0)
    assert [
        z.zone_id for z in geo.zones_near(*to_lonlat(*point_at(7_800.0)), 300.0, kind="tunnel")
    ] == ["Z-TUN"]
    route = geo.route("R-SZ-DG")
    assert (route.origin_site_id, route.destination_site_id) == ("S-ORIG", "S-DEST")
    pts = [point_at(c) for c in np.arange(0.0, 40_001.0, 200.0).tolist()]
    expected = sum(math.dist(a, b) for a, b in itertools.pairwise(pts))
    assert route.length_m == pytest.approx(expected, rel=1e-4)


def test_geojson_export_is_json_and_has_corridor(geo: Geography) -> None:
    routes = json.loads(json.dumps(geo.routes_geojson()))
    kinds = sorted(f["properties"]["kind"] for f in routes["features"])
    assert kinds == ["corridor", "route", "site", "site"]
    corridor = next(f for f in routes["features"] if f["properties"]["kind"] == "corridor")
    lon, lat = corridor["geometry"]["coordinates"][0][0]
    assert geo.distance_to_route_m("R-SZ-DG", lon, lat) == pytest.approx(CORRIDOR_M, abs=1.0)
    assert len(geo.zones_geojson()["features"]) == 4
    gates = geo.gates_geojson()["features"]
    assert {g["properties"]["gate_id"] for g in gates} == {"G-ORIG-1", "G-DEST-1"}


def test_projection_round_trip_and_local_scale() -> None:
    proj = TransverseMercator(114.0, 30.0)
    for dlon in (0.0, 1.0, 2.5):
        x, y = proj.forward(114.0 + dlon, 31.0)
        lon, lat = proj.inverse(x, y)
        assert lon == pytest.approx(114.0 + dlon, abs=1e-8)
        assert lat == pytest.approx(31.0, abs=1e-8)
        # east-west scale against the ellipsoid's prime-vertical radius, 10 m step
        a, f = 6_378_137.0, 1 / 298.257223563
        e2 = f * (2 - f)
        phi = math.radians(31.0)
        n_rad = a / math.sqrt(1 - e2 * math.sin(phi) ** 2)
        step_deg = math.degrees(10.0 / (n_rad * math.cos(phi)))
        x2, y2 = proj.forward(114.0 + dlon + step_deg, 31.0)
        k = math.hypot(x2 - x, y2 - y) / 10.0
        assert k == pytest.approx(proj.scale_at(x), abs=3e-6)


def _first(features: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    return next(f for f in features if f["properties"]["kind"] == kind)


def test_loader_reports_every_problem_naming_file_and_feature() -> None:
    data = copy.deepcopy(route_geojson())
    feats = data["features"]
    route = _first(feats, "route")
    route["geometry"]["coordinates"] = [[lat, lon] for lon, lat in route["geometry"]["coordinates"]]
    del _first(feats, "site")["properties"]["name"]
    feats.append(copy.deepcopy(_first(feats, "gate")))
    with pytest.raises(GeoConfigError) as info:
        parse_route_collection(data, "routes/sz.geojson")
    text = "\n".join(info.value.errors)
    assert "routes/sz.geojson: feature #0 (route_id 'R-SZ-DG')" in text
    assert "[lat, lon]" in text
    assert "property 'name' is missing" in text
    assert "duplicate gate_id 'G-ORIG-1'" in text
    assert "site_id 'S-ORIG' is not a site of this file" in text  # follows from the missing name
    assert len(info.value.errors) == 4


def test_loader_rejects_bad_polygons_and_kinds() -> None:
    data = copy.deepcopy(zones_geojson())
    bow = data["features"][0]["geometry"]["coordinates"][0]
    data["features"][0]["geometry"]["coordinates"] = [[bow[0], bow[12], bow[6], bow[18], bow[0]]]
    data["features"][1]["properties"]["kind"] = "lake"
    data["features"][2]["properties"]["zone_id"] = "Z-URB"
    data["features"][3]["properties"]["max_speed_kmh"] = "fast"
    with pytest.raises(GeoConfigError) as info:
        parse_zone_collection(data, "zones.geojson")
    text = "\n".join(info.value.errors)
    assert "invalid polygon" in text
    assert "Self-intersection" in text
    assert "'lake'" in text
    assert "max_speed_kmh" in text
    ok = parse_zone_collection(zones_geojson(), "zones.geojson")
    with pytest.raises(GeoConfigError, match="duplicate zone_id 'Z-STOP'"):
        Geography([], [], [], [*ok, ok[0]])


def test_from_files_and_cross_file_duplicates(tmp_path: Path) -> None:
    (tmp_path / "a.geojson").write_text(json.dumps(route_geojson()), encoding="utf-8")
    (tmp_path / "b.geojson").write_text(json.dumps(route_geojson()), encoding="utf-8")
    (tmp_path / "z.geojson").write_text(json.dumps(zones_geojson()), encoding="utf-8")
    geo = Geography.from_files([tmp_path / "a.geojson"], [tmp_path / "z.geojson"])
    assert [r.route_id for r in geo.routes] == ["R-SZ-DG"]
    with pytest.raises(
        GeoConfigError, match=r"b\.geojson: duplicate route_id 'R-SZ-DG' \(also in .*a\.geojson\)"
    ):
        Geography.from_files([tmp_path / "a.geojson", tmp_path / "b.geojson"])
    (tmp_path / "bad.geojson").write_text("{not json", encoding="utf-8")
    with pytest.raises(GeoConfigError, match=r"bad\.geojson: not valid JSON at line 1"):
        Geography.from_files([tmp_path / "bad.geojson"])

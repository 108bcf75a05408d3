"""Without a tile server the map shows land, coastline and sea from Natural Earth, packaged
with the console (the vendored `world-atlas`), clipped to the served region — and the page
still reaches nothing beyond its server."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import shapely
from playwright.sync_api import expect
from shapely.geometry import shape

from server.console.basemap import MARGIN_DEG, BasemapError, basemap_geojson, land_file
from server.console.config import ConsoleSettings
from server.geo import Geography
from tests.console.conftest import ACCOUNTS, Console, ConsoleServer
from tests.server.conftest import demo_geography

#: (lon, lat) that Natural Earth 1:10m puts on land, and in the sea.
ON_LAND = {"Guangzhou": (113.26, 23.13), "Huangpu": (113.5, 23.09)}
AT_SEA = {"Lingding estuary": (113.75, 22.45), "off the coast": (113.6, 21.9)}


@pytest.fixture(scope="module")
def geography() -> Geography:
    settings = demo_geography()
    return Geography.from_files(settings.routes, settings.zones)


def test_the_land_of_the_served_region_from_the_packaged_file(geography: Geography) -> None:
    found = basemap_geojson(land_file(ConsoleSettings()), geography)
    west, south, east, north = found["bbox"]
    routes = shapely.total_bounds([r.line for r in geography.routes])
    assert west == pytest.approx(routes[0] - MARGIN_DEG, abs=0.2)
    assert north == pytest.approx(routes[3] + MARGIN_DEG, abs=0.2)
    land = shape(found["features"][0]["geometry"])
    assert land.geom_type == "MultiPolygon" and land.is_valid
    assert shapely.box(west, south, east, north).contains(land)
    assert all(land.contains(shapely.Point(p)) for p in ON_LAND.values())
    assert not any(land.contains(shapely.Point(p)) for p in AT_SEA.values())
    baiyun = geography.gate("G-BAIYUN-1")
    assert land.contains(shapely.Point(baiyun.lon, baiyun.lat))
    assert len(json.dumps(found)) < 200_000  # small: one request, drawn at once


def test_a_file_that_is_not_land_topojson_is_refused(tmp_path: Path, geography: Geography) -> None:
    bad = tmp_path / "land-10m.json"
    bad.write_text('{"type": "Topology", "objects": {}}', encoding="utf-8")
    with pytest.raises(BasemapError, match="not world-atlas land"):
        basemap_geojson(bad, geography)
    with pytest.raises(BasemapError):
        basemap_geojson(tmp_path / "missing.json", geography)


def test_the_map_draws_land_and_sea_without_tiles(
    console: Console, console_server: ConsoleServer
) -> None:
    console.login(ACCOUNTS["officer"])
    page = console.page
    expect(page.locator("#map[data-ready='1']")).to_be_attached()
    expect(page.locator("#map")).to_have_attribute("data-basemap", "land")
    expect(page.locator("#map")).to_have_class(re.compile(r"\boffline-basemap\b"))
    land = page.locator(".leaflet-basemap-pane path")
    expect(land.first).to_be_attached()
    assert land.count() >= 1
    sea = page.locator("#map").evaluate("m => getComputedStyle(m).backgroundColor")
    assert sea == "rgb(205, 223, 234)"
    expect(page.locator(".leaflet-control-attribution")).to_contain_text("Natural Earth")
    assert not any(u.endswith(".json") and "/vendor/" in u for u in console.requests)
    console.screenshot("map-offline-basemap")

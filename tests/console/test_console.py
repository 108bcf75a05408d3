"""The console in a real browser: login, rate limit, live map, roles, CSRF."""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Page, expect

from contract.ids import utc_now
from server.auth.accounts import AccountStore
from server.auth.config import AuthSettings
from tests.console.conftest import ACCOUNTS, Console, ConsoleServer
from tests.server.auth.session import PASSWORD, add_account
from tests.server.conftest import DEMO, declaration

ROUTE_LINE = next(
    f["geometry"]["coordinates"]
    for f in json.loads((DEMO / "routes" / "R-HP-BY.geojson").read_text(encoding="utf-8"))[
        "features"
    ]
    if f["properties"]["kind"] == "route"
)
# Points along the demo route R-HP-BY ([lon, lat]).
ROUTE = [(113.505, 23.087), (113.492, 23.096), (113.478, 23.106), (113.462, 23.119)]


def test_login_wrong_password_then_right_one(console: Console):
    console.goto("/")
    expect(console.page).to_have_url(f"{console.base_url}/login?next=%2F")
    expect(console.page.locator("h2")).to_have_text("登录")
    console.screenshot("login")
    console.login(ACCOUNTS["officer"], "not my password")
    expect(console.page.locator("#login-error")).to_have_text("用户名或密码错误")
    assert console.page.context.cookies() == []
    console.page.fill("#password", PASSWORD)
    console.page.click("#submit")
    expect(console.page).to_have_url(f"{console.base_url}/")
    expect(console.page.locator("#who")).to_have_text("Officer.One · 关员")
    cookie = console.page.context.cookies()[0]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    # English on request; the choice is kept.
    console.page.select_option("#lang", "en")
    expect(console.page.locator("header .sub")).to_have_text("Bonded transport monitoring")
    expect(console.page.locator("#who")).to_have_text("Officer.One · Officer")
    console.page.reload()
    expect(console.page.locator("#logout")).to_have_text("Log out")
    console.page.click("#logout")
    expect(console.page).to_have_url(f"{console.base_url}/login?next=%2F")
    status, _ = console.api("GET", "/api/v1/trips")
    assert status == 401


def test_account_locked_after_repeated_failures(console: Console, console_server: ConsoleServer):
    add_account(console_server.services, "locked.out", "officer")
    console.login("locked.out", "wrong-1")
    error = console.page.locator("#login-error")
    expect(error).to_have_text("用户名或密码错误")
    for attempt in ("wrong-2", "wrong-3"):
        console.page.fill("#password", attempt)
        console.page.click("#submit")
    expect(error).to_have_text("用户名或密码错误")
    # The right one is refused while locked, with the answer an unknown account gets:
    # the page must not tell an outsider that the account exists.
    console.page.fill("#password", PASSWORD)
    console.page.click("#submit")
    expect(error).to_have_text("用户名或密码错误")
    assert console.page.url.startswith(f"{console.base_url}/login")
    accounts = AccountStore(console_server.services.store.engine, AuthSettings())
    found = accounts.get("locked.out")
    assert found is not None and found.locked_until is not None
    console.screenshot("login-locked")


def test_live_map_routes_trucks_trip_follow_and_clusters(
    console: Console, console_server: ConsoleServer
):
    svc = console_server.services
    now = utc_now()
    svc.store.create_declaration(declaration(declaration_id="D-MAP-1", vehicle_id="TRK-7"), now)
    svc.store.start_trip("D-MAP-1", now - timedelta(minutes=5))
    lon, lat = ROUTE[0]
    console_server.store_positions("TRK-7", [(lon, lat, 52.0)], now)
    # Far apart (> 10 km), so none of them is clustered at the starting zoom.
    console_server.store_positions("TRK-STOP", [(113.32, 23.203, 0.0)], now)
    console_server.store_positions("TRK-OLD", [(113.625, 22.69, 40.0)], now - timedelta(minutes=10))
    console_server.store_positions("TRK-NEAR", [(113.626, 22.691, 30.0)], now)

    console.login(ACCOUNTS["officer"])
    page = console.page
    expect(page.locator("#map[data-ready='1']")).to_be_attached()
    expect(page.locator("path.route-line")).to_have_count(2)
    expect(page.locator("path.corridor")).to_have_count(2)
    expect(page.locator("path.gate")).to_have_count(3)
    # The corridor is drawn in metres: 2 × 300 m wide at this zoom, in pixels.
    width = float(page.locator("path.corridor").first.get_attribute("stroke-width") or 0)
    zoom = int(page.locator("#map").get_attribute("data-zoom") or 0)
    lats = [c[1] for c in ROUTE_LINE]
    mpp = 40075016.686 * math.cos(math.radians(sum(lats) / len(lats))) / 2 ** (zoom + 8)
    assert width == pytest.approx(max(3.0, 2 * 300 / mpp), rel=0.01)
    truck = page.locator(".truck[data-vehicle='TRK-7']")
    expect(truck).to_have_attribute("data-status", "in_transit")
    expect(page.locator(".truck[data-vehicle='TRK-STOP']")).to_have_attribute(
        "data-status", "stopped"
    )
    # TRK-OLD (offline) and TRK-NEAR stand 150 m apart: one cluster until zoomed in.
    expect(page.locator(".marker-cluster")).to_have_count(1)
    expect(page.locator(".marker-cluster")).to_have_text("2")
    expect(page.locator("#trucks tr[data-vehicle='TRK-7'] .st")).to_have_text("行驶中")
    before = truck.bounding_box()
    assert before is not None

    # New fixes move the truck on the map.
    for i, (lon, lat) in enumerate(ROUTE[1:], start=1):
        console_server.store_positions("TRK-7", [(lon, lat, 55.0)], now + timedelta(seconds=i))
    page.wait_for_function(
        """([x, y]) => {
            const truck = document.querySelector(".truck[data-vehicle='TRK-7']");
            const r = truck?.getBoundingClientRect();
            return r && Math.hypot(r.x - x, r.y - y) > 20;
        }""",
        arg=[before["x"], before["y"]],
    )
    after = truck.bounding_box()
    assert after is not None and after["x"] < before["x"] and after["y"] < before["y"]  # NW

    # Click for its trip; its track is drawn; follow it.
    truck.click()
    expect(page.locator("#trip-details .v-trip-id")).to_have_text("D-MAP-1")
    expect(page.locator("#trip-details .v-trip-status")).to_have_text("在途")
    expect(page.locator("#trip-details .v-trip-points")).to_have_text("4")
    expect(page.locator("path.trip-track")).to_have_count(1)
    page.click("#follow")
    expect(page.locator("#follow")).to_have_text("停止跟随")
    console.screenshot("map")

    # Clicking the cluster zooms in until its trucks stand apart.
    page.click("#follow")  # stop following, or the map would jump back to TRK-7
    expect(page.locator("#follow")).to_have_text("跟随")
    page.locator(".marker-cluster").click()
    expect(page.locator(".truck[data-vehicle='TRK-OLD']")).to_have_attribute(
        "data-status", "offline"
    )
    expect(page.locator(".truck[data-vehicle='TRK-NEAR']")).to_have_attribute(
        "data-status", "in_transit"
    )
    # The only failed load allowed: /alarms, until the alarms API is on this server.
    assert [e for e in console.console_errors if "status of 404" not in e] == []


def dot_colour(page: Page, vehicle: str) -> str:
    return page.locator(f".truck[data-vehicle='{vehicle}'] .dot").evaluate(
        "d => getComputedStyle(d).backgroundColor"
    )


def test_map_draws_zones_and_sites_and_colours_a_truck_with_an_alarm(
    console: Console, console_server: ConsoleServer
):
    """Every zone and site of the geography on the map in its kind's colours; a truck
    turns red with an active alarm and back when it is cleared; no tile server configured:
    a plain background and not one tile requested."""
    svc = console_server.services
    now = utc_now()
    svc.store.create_declaration(declaration(declaration_id="D-MAP-A", vehicle_id="TRK-A7"), now)
    svc.store.start_trip("D-MAP-A", now - timedelta(minutes=5))
    console_server.store_positions("TRK-A7", [(113.40, 23.30, 0.0)], now)  # stopped, north
    console_server.store_positions("TRK-A8", [(113.55, 22.80, 60.0)], now)  # moving, south
    console.login(ACCOUNTS["officer"])
    page = console.page
    expect(page.locator("#map[data-ready='1']")).to_be_attached()
    _, zones = console.api("GET", "/api/v1/zones")
    _, routes = console.api("GET", "/api/v1/routes")
    kinds = Counter(f["properties"]["kind"] for f in zones["features"])
    sites = sum(f["properties"]["kind"] == "site" for f in routes["features"])
    assert kinds == {"forbidden": 2, "stop": 2, "tunnel": 1, "urban": 1} and sites >= 3
    expect(page.locator("path.zone")).to_have_count(sum(kinds.values()))
    for kind, count in kinds.items():
        expect(page.locator(f"path.zone-{kind}")).to_have_count(count)
    expect(page.locator("path.zone-forbidden").first).to_have_attribute("fill", "#dc2626")
    expect(page.locator("path.zone-stop").first).to_have_attribute("fill", "#16a34a")
    expect(page.locator("path.site")).to_have_count(sites)
    expect(page.locator("path.site").first).to_have_attribute("fill", "#f59e0b")

    truck = page.locator(".truck[data-vehicle='TRK-A7']")
    expect(truck).to_have_attribute("data-status", "stopped")
    assert dot_colour(page, "TRK-A7") == "rgb(245, 158, 11)"  # amber
    expect(page.locator(".truck[data-vehicle='TRK-A8']")).to_have_attribute(
        "data-status", "in_transit"
    )
    assert dot_colour(page, "TRK-A8") == "rgb(22, 163, 74)"  # green
    # As the rules' effects do: raised in a transaction, the listeners told after it.
    raised = console_server.alarms.raise_(
        "D-MAP-A", "TRK-A7", "ROUTE_DEVIATION", "major", now, (113.40, 23.30), "off route"
    )
    console_server.alarms.notify([raised.alarm_id])
    expect(truck).to_have_attribute("data-status", "alarm")
    expect(truck).to_have_class(re.compile(r"\btruck-alarm\b"))
    assert dot_colour(page, "TRK-A7") == "rgb(220, 38, 38)"  # red
    expect(truck).to_have_attribute("title", "报警")
    expect(page.locator("#trucks tr[data-vehicle='TRK-A7'] .st")).to_have_text("报警")
    assert dot_colour(page, "TRK-A8") == "rgb(22, 163, 74)"  # the other one unchanged
    console.screenshot("map-alarm")
    console_server.alarms.officer_clear(raised.alarm_id, "officer.one", "已核实，车辆回到路线")
    expect(truck).to_have_attribute("data-status", "stopped")
    assert dot_colour(page, "TRK-A7") == "rgb(245, 158, 11)"

    # No tile source configured: plain background, no tile layer, no tile requested.
    expect(page.locator("#map")).to_have_class(re.compile(r"\bplain-background\b"))
    expect(page.locator("#map")).not_to_have_attribute("data-tiles", re.compile(".*"))
    expect(page.locator("img.leaflet-tile")).to_have_count(0)
    tile_like = re.compile(r"/\d+/\d+/\d+(\.\w+)?(\?|$)")
    assert [u for u in console.requests if tile_like.search(urlsplit(u).path)] == []


def test_role_without_rights_is_refused_and_ui_hides_the_action(
    console: Console, console_server: ConsoleServer
):
    console.login(ACCOUNTS["officer"])
    expect(console.page.locator("#who")).to_contain_text("关员")
    expect(console.page.locator("#users-open")).to_be_hidden()
    _, me = console.api("GET", "/api/v1/auth/me")
    token = {"X-CSRF-Token": me["csrf_token"]}
    body = {
        "username": "sneaky",
        "display_name": "x",
        "role": "admin",
        "password": "a long password",
    }
    status, error = console.api("POST", "/api/v1/users", body, token)
    assert status == 403 and error["error"]["code"] == "forbidden"
    status, error = console.api(
        "POST", "/api/v1/declarations", declaration(declaration_id="D-NO"), token
    )
    assert status == 403 and "supervisor or integration" in error["error"]["message"]
    assert console_server.services.store.get_trip("D-NO") is None

    console.page.click("#logout")
    expect(console.page).to_have_url(f"{console.base_url}/login?next=%2F")
    console.login(ACCOUNTS["admin"])
    opener = console.page.locator("#users-open")
    expect(opener).to_be_visible()
    opener.click()
    form = console.page.locator("#users-form")
    form.locator("[name=username]").fill("new.officer")
    form.locator("[name=display_name]").fill("新关员")
    form.locator("[name=password]").fill("a long password")
    form.locator("button[type=submit]").click()
    expect(console.page.locator("#users-message")).to_have_text("已创建账户 new.officer")
    expect(console.page.locator("#users-table")).to_contain_text("新关员")
    console.screenshot("users")


def test_csrf_token_missing_is_refused(console: Console, console_server: ConsoleServer):
    console.login(ACCOUNTS["supervisor"])
    expect(console.page.locator("#who")).to_contain_text("科长")
    body = declaration(declaration_id="D-CSRF", vehicle_id="TRK-C")
    status, error = console.api("POST", "/api/v1/declarations", body)
    assert status == 403 and error["error"]["code"] == "csrf"
    assert console_server.services.store.get_trip("D-CSRF") is None
    _, me = console.api("GET", "/api/v1/auth/me")
    status, trip = console.api(
        "POST", "/api/v1/declarations", body, {"X-CSRF-Token": me["csrf_token"]}
    )
    assert status == 201 and trip["trip_id"] == "D-CSRF"

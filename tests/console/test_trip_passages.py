"""A trip's gate passages on its timeline: the console's timeline endpoint carries them
(time, gate, lane, decision, reasons, override) with the officers' actions on them, and the
trip page shows them among lock events, alarms and officer actions, in time order.

The passages go through the server's real path (the store's ingest, then `GateService`)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from playwright.sync_api import expect

from contract.ids import format_ts, utc_now
from server.app import create_app
from tests.console.conftest import ACCOUNTS, AUTH, Console, ConsoleServer
from tests.server.auth.session import login
from tests.server.conftest import declaration

TRIP = "D-TL-1"
VEHICLE = "TRK-TL1"
ORIGIN, DEST = "G-HUANGPU-1", "G-BAIYUN-1"
# Along R-HP-BY ([lon, lat]).
ROUTE = [(113.505, 23.087), (113.492, 23.096), (113.478, 23.106), (113.462, 23.119)]
COMMENT = "放行单已电话确认，人工放行"


@dataclass(frozen=True)
class Story:
    start: datetime
    alarm_id: int


@pytest.fixture(scope="module")
def story(console_server: ConsoleServer) -> Story:
    """Declared, sealed, released at the departure gate, a lock report and an alarm on the
    road, held at the arrival gate (no release record), opened there by an officer."""
    svc = console_server.services
    start = utc_now() - timedelta(minutes=40)
    body = declaration(
        declaration_id=TRIP, vehicle_id=VEHICLE, plate="粤A·TL001", containers=["TLNU1000014"],
        origin_gate=ORIGIN, destination_gate=DEST,
    )  # fmt: skip
    svc.store.create_declaration(body, start - timedelta(minutes=10), "supervisor.one")
    console_server.store_lock(VEHICLE, "EL-1", "sealed", start - timedelta(minutes=5))
    console_server.pass_gate(ORIGIN, "P-TL-DEP", start, containers=["TLNU1000014"],
                             plate="粤A·TL001")  # fmt: skip
    for i, (lon, lat) in enumerate(ROUTE):
        console_server.store_positions(VEHICLE, [(lon, lat, 50.0)], start + timedelta(minutes=i))
    console_server.store_lock(VEHICLE, "EL-1", "status", start + timedelta(minutes=10))
    raised = console_server.alarms.raise_(
        TRIP, VEHICLE, "OVERSPEED", "minor", start + timedelta(minutes=15), ROUTE[2], "92 km/h"
    )
    console_server.pass_gate(DEST, "P-TL-ARR", start + timedelta(minutes=30),
                             containers=["TLNU1000014"], plate="粤A·TL001")  # fmt: skip
    console_server.gates.override("P-TL-ARR", "open", COMMENT, ACCOUNTS["officer"])
    return Story(start, raised.alarm_id)


@pytest.fixture
def officer_api(console_server: ConsoleServer) -> Iterator[TestClient]:
    app = create_app(console_server.services, auth=AUTH)
    with TestClient(app) as client:
        login(client, ACCOUNTS["officer"])
        yield client


def test_timeline_api_carries_the_passages_oldest_first(officer_api: TestClient, story: Story):
    res = officer_api.get(f"/api/v1/console/trips/{TRIP}/timeline")
    assert res.status_code == 200, res.text
    data = res.json()
    passages = [
        (p["passage_id"], p["ts"], p["gate_id"], p["lane"], p["direction"], p["decision"],
         p["phase"], p["effective"])
        for p in data["passages"]
    ]  # fmt: skip
    assert passages == [
        ("P-TL-DEP", format_ts(story.start), ORIGIN, "L1", "in", "open", "departure", "open"),
        ("P-TL-ARR", format_ts(story.start + timedelta(minutes=30)), DEST, "L1", "in", "hold",
         "arrival", "open"),
    ]  # fmt: skip
    departure, arrival = data["passages"]
    assert departure["reasons"] == [] and departure["override"] is None
    assert "release_missing" in arrival["reason_codes"]
    assert len(arrival["reasons"]) == len(arrival["reason_codes"])
    assert "no electronic release record" in arrival["reasons"]
    assert (arrival["override"]["by"], arrival["override"]["comment"]) == ("officer.one", COMMENT)
    # The officers' and the server's steps on the passages are in the trip's audit lines.
    steps = [(a["action"], a["actor"], a["object_id"]) for a in data["audit"]]
    assert ("gate.decision", "system", "P-TL-DEP") in steps
    assert ("gate.decision", "system", "P-TL-ARR") in steps
    assert ("passage.override", "officer.one", "P-TL-ARR") in steps
    assert [a["seq"] for a in data["audit"]] == sorted({a["seq"] for a in data["audit"]})
    assert data["trip"]["status"] == "released"
    assert [a["id"] for a in data["alarms"]] == [story.alarm_id]


def test_trip_page_shows_the_passages_in_time_order(console: Console, story: Story):
    console.login(ACCOUNTS["officer"])
    expect(console.page.locator("#who")).to_contain_text("关员")
    console.goto(f"/trip?id={TRIP}")
    page = console.page
    expect(page.locator(f"#timeline[data-trip='{TRIP}']")).to_be_attached()
    items = page.locator("#timeline > li")
    expect(page.locator("#timeline li[data-kind='passage']")).to_have_count(2)
    order = items.evaluate_all(
        """lis => lis.map(li => [li.dataset.kind, li.dataset.ref ?? "", li.dataset.action ?? "",
                               li.querySelector("time").getAttribute("datetime")])"""
    )
    times = [datetime.fromisoformat(at.replace("Z", "+00:00")) for *_, at in order]
    assert times == sorted(times), order

    def at(kind: str, ref: str) -> int:
        found = [i for i, (k, r, a, _) in enumerate(order) if k == kind and ref in (r, a)]
        assert len(found) == 1, (kind, ref, order)
        return found[0]

    story_order = [
        at("trip", "declared"),
        at("audit", "declaration.create"),
        at("passage", "P-TL-DEP"),
        at("trip", "started"),
        at("lock", ""),
        at("alarm", str(story.alarm_id)),
        at("passage", "P-TL-ARR"),
        at("audit", "passage.override"),
    ]
    assert story_order == sorted(story_order), order
    # The server's own gate.decision entries are the passages' lines, not repeated.
    expect(page.locator("#timeline li[data-action='gate.decision']")).to_have_count(0)

    departure = page.locator("#timeline li[data-kind='passage'][data-ref='P-TL-DEP']")
    expect(departure.locator(".what")).to_have_text(f"卡口 {ORIGIN} 车道 L1（进）：放行")
    expect(departure.locator("ul.reasons")).to_have_count(0)
    arrival = page.locator("#timeline li[data-kind='passage'][data-ref='P-TL-ARR']")
    expect(arrival).to_have_attribute("data-decision", "hold")
    expect(arrival.locator(".what")).to_have_text(f"卡口 {DEST} 车道 L1（进）：拦截")
    expect(arrival.locator("li[data-code='release_missing'] .reason")).to_have_text(
        "无电子放行记录"
    )
    expect(arrival.locator("li[data-code='release_missing'] .raw")).to_have_text(
        "no electronic release record"
    )
    override = page.locator("#timeline li[data-action='passage.override']")
    expect(override.locator(".what")).to_have_text("卡口人工改判（过卡 P-TL-ARR）")
    expect(override.locator(".actor")).to_have_text("officer.one")
    expect(override.locator("q")).to_have_text(COMMENT)
    console.screenshot("trip-passages")

    page.select_option("#lang", "en")
    expect(departure.locator(".what")).to_have_text(f"Gate {ORIGIN} lane L1 (in): Open")
    expect(arrival.locator("li[data-code='release_missing'] .reason")).to_have_text(
        "No electronic release record"
    )
    expect(override.locator(".what")).to_have_text("Gate decision overridden (passage P-TL-ARR)")

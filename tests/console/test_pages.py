"""The console's pages in a real browser: alarm queue, trip playback, declarations, audit,
gate lanes."""

from __future__ import annotations

import json
import os
import re
import shutil
from datetime import datetime, timedelta
from pathlib import Path

from playwright.sync_api import Browser, Locator, Page, expect

from contract.ids import utc_now
from server.audit import AuditQuery, list_entries
from server.console.config import ConsoleSettings
from server.console.web import STATIC_DIR
from tests.console.conftest import (
    ACCOUNTS,
    ARTIFACTS,
    ROOT,
    Console,
    ConsoleServer,
    console_tab,
    running_console_server,
)
from tests.server.conftest import declaration

DOCS_IMG = ROOT / "docs" / "img"
# Points along the demo route R-HP-BY ([lon, lat]), south-east to north-west.
ROUTE = [
    (113.505, 23.087),
    (113.498, 23.0915),
    (113.492, 23.096),
    (113.485, 23.101),
    (113.478, 23.106),
    (113.470, 23.1125),
    (113.462, 23.119),
]


def open_trip(server: ConsoleServer, trip_id: str, vehicle_id: str, started: datetime) -> None:
    svc = server.services
    body = declaration(declaration_id=trip_id, vehicle_id=vehicle_id, plate="粤B·12345")
    svc.store.create_declaration(body, started - timedelta(minutes=1), "supervisor.one")
    svc.store.start_trip(trip_id, started)


def keep_for_docs(console: Console, name: str) -> None:
    """Screenshot to test-artifacts/console/; with BONDWATCH_UPDATE_DOC_IMAGES=1 also
    into docs/img/ as console-<name> (the README's pictures)."""
    path = console.screenshot(name)
    if os.environ.get("BONDWATCH_UPDATE_DOC_IMAGES") == "1":
        DOCS_IMG.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, DOCS_IMG / f"console-{name}.png")


def csrf(console: Console) -> dict[str, str]:
    _, me = console.api("GET", "/api/v1/auth/me")
    return {"X-CSRF-Token": me["csrf_token"]}


def row(page: Page, alarm_id: int) -> Locator:
    return page.locator(f"#alarm-queue tr[data-id='{alarm_id}']")


def test_new_critical_alarm_is_flagged_then_acknowledged_with_a_comment(
    console: Console, console_server: ConsoleServer
):
    now = utc_now()
    open_trip(console_server, "D-ALM-1", "TRK-A1", now - timedelta(minutes=30))
    alarms = console_server.alarms
    minor = alarms.raise_(
        "D-ALM-1", "TRK-A1", "UNPLANNED_STOP", "minor", now - timedelta(minutes=20), None, "stop"
    )
    console.login(ACCOUNTS["officer"])
    expect(console.page.locator("#who")).to_contain_text("关员")
    console.goto("/alarms")
    page = console.page
    expect(page.locator("#alarm-queue[data-loaded='1']")).to_be_attached()
    expect(row(page, minor.alarm_id)).to_have_attribute("data-new", "0")  # there before
    expect(page.locator("body")).not_to_have_attribute("data-tones", re.compile(".+"))

    # The rules raise a critical alarm 10 minutes old: newer than the page, older than
    # the escalation delay (5 min): flagged new, escalated, sounded, and first in the queue.
    critical = alarms.raise_(
        "D-ALM-1",
        "TRK-A1",
        "LOCK_TAMPER",
        "critical",
        now - timedelta(minutes=10),
        (113.49, 23.1),
        "rope cut",
    )
    flagged = row(page, critical.alarm_id)
    expect(flagged).to_have_attribute("data-new", "1")
    expect(flagged).to_have_attribute("data-escalated", "1")
    expect(flagged).to_have_class(re.compile(r"\bescalated\b"))
    expect(flagged.locator(".escalated-badge")).to_have_text("已升级")
    expect(page.locator("body")).to_have_attribute("data-tones", "1")
    expect(page.locator("#alarm-queue tbody tr").first).to_have_attribute(
        "data-id", str(critical.alarm_id)
    )
    expect(flagged.locator(".status-cell")).to_have_text("未确认")
    keep_for_docs(console, "alarms")

    # Details with history; the officer sees no assign button.
    flagged.click()
    expect(page.locator("#alarm-fields .v-alarms-id")).to_have_text(str(critical.alarm_id))
    expect(page.locator("#alarm-history tbody tr[data-action='raise']")).to_have_count(1)
    expect(page.locator("#do-assign")).to_be_hidden()

    # No comment: the dialog will not submit (not even forced), and nothing changes.
    page.click("#do-ack")
    submit = page.locator("#action-submit")
    expect(submit).to_be_disabled()
    page.fill("#action-comment", "   ")
    expect(submit).to_be_disabled()
    page.locator("#action-dialog form").evaluate("f => f.requestSubmit()")
    expect(page.locator("#action-dialog")).to_be_visible()
    expect(page.locator("#action-hint")).to_be_visible()
    status, body = console.api("GET", f"/api/v1/alarms/{critical.alarm_id}")
    assert status == 200 and body["status"] == "active_unack"
    console.screenshot("alarm-ack-dialog")

    page.fill("#action-comment", "已电话联系司机，现场核查")
    submit.click()
    expect(page.locator("#action-dialog")).to_have_count(0)
    expect(flagged.locator(".status-cell")).to_have_text("已确认")
    expect(flagged).to_have_attribute("data-escalated", "0")
    ack_row = page.locator("#alarm-history tbody tr[data-action='ack']")
    expect(ack_row).to_contain_text("officer.one")
    console.screenshot("alarm-detail")

    status, body = console.api("GET", f"/api/v1/alarms/{critical.alarm_id}")
    assert status == 200 and body["status"] == "active_ack"
    ack = [h for h in body["history"] if h["action"] == "ack"]
    expected = [("officer.one", "已电话联系司机，现场核查")]
    assert [(h["actor"], h["comment"]) for h in ack] == expected
    entries, _ = list_entries(
        console_server.services.store.engine,
        AuditQuery(action="alarm.ack", object_id=str(critical.alarm_id)),
    )
    assert [(e.actor, json.loads(e.details)["comment"]) for e in entries] == [
        ("officer.one", "已电话联系司机，现场核查")
    ]

    # An officer cannot assign: the API refuses it too.
    status, error = console.api(
        "POST",
        f"/api/v1/alarms/{critical.alarm_id}/assign",
        {"assignee": "officer.one", "comment": "mine"},
        csrf(console),
    )
    assert status == 403 and error["error"]["code"] == "forbidden"
    # A comment-less acknowledge is refused by the API as well.
    status, error = console.api(
        "POST", f"/api/v1/alarms/{minor.alarm_id}/ack", {"comment": ""}, csrf(console)
    )
    assert status == 422, error
    assert error["error"]["field"] == "comment", error
    assert [e for e in console.console_errors if "status of 4" not in e] == []


def test_supervisor_assigns_then_audit_page_names_the_officer_and_verifies(
    console: Console, console_server: ConsoleServer
):
    now = utc_now()
    open_trip(console_server, "D-ALM-2", "TRK-A2", now - timedelta(minutes=30))
    alarms = console_server.alarms
    raised = alarms.raise_(
        "D-ALM-2", "TRK-A2", "ROUTE_DEVIATION", "major", now - timedelta(minutes=3), None, "off"
    )
    alarms.ack(raised.alarm_id, "officer.one", "正在核实偏航原因")
    console.login(ACCOUNTS["supervisor"])
    expect(console.page.locator("#who")).to_contain_text("科长")
    console.goto(f"/alarms?type=ROUTE_DEVIATION&id={raised.alarm_id}")
    page = console.page
    expect(page.locator("#alarm-fields .v-alarms-id")).to_have_text(str(raised.alarm_id))
    page.click("#do-assign")
    page.select_option("#action-assignee", "officer.one")
    page.fill("#action-comment", "请跟进")
    page.click("#action-submit")
    expect(row(page, raised.alarm_id).locator(".assignee-cell")).to_have_text("officer.one")
    # The assignee filter narrows the queue to that officer's alarms.
    page.select_option("#alarm-filters select[name=assignee]", "officer.one")
    expect(page.locator("#alarm-queue tbody tr")).to_have_count(1)

    status, entries = console.api(
        "GET", f"/api/v1/audit?action=alarm.ack&object_id={raised.alarm_id}"
    )
    assert status == 200 and [e["actor"] for e in entries] == ["officer.one"]

    console.goto("/audit")
    expect(page.locator("#audit-table[data-loaded]")).to_be_attached()
    page.fill("#audit-filters input[name=actor]", "officer.one")
    page.fill("#audit-filters input[name=object_id]", str(raised.alarm_id))
    page.click("#audit-search")
    line = page.locator("#audit-table tbody tr[data-action='alarm.ack']")
    expect(line).to_have_count(1)
    expect(line.locator(".actor")).to_have_text("officer.one")
    expect(line.locator(".details")).to_contain_text("正在核实偏航原因")
    expect(page.locator("#audit-table tbody tr")).to_have_count(1)  # the assign was zhang's
    # A time range after everything shows nothing; paging counts from X-Total-Count.
    page.fill("#audit-filters input[name=object_id]", "")
    page.fill("#audit-filters input[name=actor]", "")
    page.click("#audit-search")
    expect(page.locator("#audit-range")).to_contain_text("共")
    page.fill("#audit-filters input[name=since]", "2099-01-01T00:00:00")
    page.click("#audit-search")
    expect(page.locator("#audit-table tbody tr")).to_have_count(0)
    expect(page.locator("#audit-range")).to_have_text("第 0–0 条，共 0 条")
    page.fill("#audit-filters input[name=since]", "")
    page.click("#audit-search")
    page.click("#audit-verify")
    result = page.locator("#audit-verify-result")
    expect(result).to_have_attribute("data-ok", "1")
    expect(result).to_contain_text("校验通过")
    keep_for_docs(console, "audit")


def test_trip_timeline_and_track_playback(console: Console, console_server: ConsoleServer):
    start = utc_now() - timedelta(minutes=20)
    open_trip(console_server, "D-TRIP-1", "TRK-P1", start)
    for i, (lon, lat) in enumerate(ROUTE):
        console_server.store_positions("TRK-P1", [(lon, lat, 48.0)], start + timedelta(seconds=i))
    console_server.store_lock("TRK-P1", "EL-1", "sealed", start + timedelta(seconds=1))
    alarms = console_server.alarms
    raised = alarms.raise_(
        "D-TRIP-1",
        "TRK-P1",
        "OVERSPEED",
        "minor",
        start + timedelta(seconds=3),
        (113.485, 23.101),
        "over 80 km/h",
    )
    alarms.ack(raised.alarm_id, "officer.one", "已提醒司机减速")

    console.goto("/login")
    status, data = console.api("GET", "/api/v1/console/trips/D-TRIP-1/timeline")
    assert status == 401  # not logged in yet
    console.login(ACCOUNTS["officer"])
    expect(console.page.locator("#who")).to_contain_text("关员")
    status, data = console.api("GET", "/api/v1/console/trips/D-TRIP-1/timeline")
    assert status == 200
    assert len(data["trip"]["track"]) == len(ROUTE)
    assert [a["id"] for a in data["alarms"]] == [raised.alarm_id]
    assert [(e["action"], e["actor"]) for e in data["audit"]] == [
        ("declaration.create", "supervisor.one"),
        ("alarm.ack", "officer.one"),
    ]
    assert [(x["lock_id"], x["event"]) for x in data["locks"]] == [("EL-1", "sealed")]

    console.goto("/trip?id=D-TRIP-1")
    page = console.page
    expect(page.locator("#map[data-ready='1']")).to_be_attached()
    expect(page.locator("#trip-summary .v-trip-points")).to_have_text(str(len(ROUTE)))
    timeline = page.locator("#timeline li")
    expect(timeline.locator("xpath=self::*[@data-kind='alarm']")).to_have_count(1)
    expect(page.locator("#timeline li[data-kind='alarm']")).to_contain_text("超速")
    expect(page.locator("#timeline li[data-kind='audit']")).to_have_count(2)
    expect(page.locator("#timeline li[data-kind='audit']").last).to_contain_text("officer.one")
    expect(page.locator("#timeline li[data-kind='audit']").last).to_contain_text("已提醒司机减速")
    expect(page.locator("#timeline li[data-kind='lock']")).to_contain_text("施封")
    expect(page.locator("#timeline li[data-kind='trip']")).to_have_count(2)
    expect(page.locator("path.trip-track")).to_have_count(1)
    expect(page.locator("path.corridor")).to_have_count(2)

    # Where the marker stands, as the map places it (its screen box moves if the map pans).
    marker = page.locator(".leaflet-marker-icon:has(.playback-marker)")

    def placed() -> tuple[float, float]:
        lon, lat = marker.get_attribute("data-lon"), marker.get_attribute("data-lat")
        assert lon is not None and lat is not None
        return float(lon), float(lat)

    expect(page.locator("#playback")).to_have_attribute("data-index", "0")
    expect(marker).to_be_visible()
    assert placed() == ROUTE[0]
    # ×60: the 6 s of fixes play in a tenth of a second; the marker ends on the last fix.
    page.select_option("#play-speed", "60")
    page.click("#play")
    expect(page.locator("#playback")).to_have_attribute("data-index", str(len(ROUTE) - 1))
    expect(marker).to_have_attribute("data-index", str(len(ROUTE) - 1))
    assert placed() == ROUTE[-1]
    expect(page.locator("#play")).to_have_text("播放")
    # The slider moves it back to any fix.
    page.locator("#play-slider").fill("2")
    expect(page.locator("#playback")).to_have_attribute("data-index", "2")
    assert placed() == ROUTE[2]
    keep_for_docs(console, "trip")
    assert [e for e in console.console_errors if "status of 401" not in e] == []


def test_declarations_list_search_register_and_field_errors(
    console: Console, console_server: ConsoleServer
):
    open_trip(console_server, "D-LIST-1", "TRK-L1", utc_now() - timedelta(minutes=5))
    console.login(ACCOUNTS["supervisor"])
    expect(console.page.locator("#who")).to_contain_text("科长")
    console.goto("/declarations")
    page = console.page
    expect(page.locator("#decl-table[data-loaded='1']")).to_be_attached()
    expect(page.locator("#decl-table tr[data-id='D-LIST-1']")).to_have_count(1)

    form = page.locator("#decl-form")
    form.locator("[name=declaration_id]").fill("D-NEW-1")
    form.locator("[name='enterprise.code']").fill("4401960099")
    form.locator("[name='enterprise.name']").fill("广州示范物流")
    form.locator("[name=vehicle_id]").fill("TRK-N1")
    form.locator("[name=plate]").fill("粤A·N0001")
    form.locator("[name=lock_ids]").fill("EL-9")
    form.locator("[name=containers]").fill("CSQU3054383, bad-box")
    page.click("#decl-submit")
    error = page.locator(".field-error[data-for='containers']")
    expect(error).to_contain_text("String should match pattern")
    expect(form.locator("[name=containers]")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#decl-message")).to_have_text("请按提示修改标出的字段")
    expect(page.locator(".field-error[data-for='plate']")).to_have_text("")
    console.screenshot("declaration-error")

    form.locator("[name=containers]").fill("CSQU3054383")
    page.click("#decl-submit")
    expect(page.locator("#decl-message")).to_have_text("已登记申报 D-NEW-1")
    expect(error).to_have_text("")
    expect(page.locator("#decl-table tr[data-id='D-NEW-1']")).to_contain_text("已申报")
    trip = console_server.services.store.get_trip("D-NEW-1")
    assert trip is not None and trip.vehicle_id == "TRK-N1"

    # The same number again: the conflict is shown next to the declaration number.
    form.locator("[name=declaration_id]").fill("D-NEW-1")
    page.click("#decl-submit")
    expect(page.locator(".field-error[data-for='declaration_id']")).to_contain_text(
        "already registered"
    )

    page.fill("#decl-search", "trk-n1")
    expect(page.locator("#decl-table tbody tr")).to_have_count(1)
    page.fill("#decl-search", "")
    page.select_option("#decl-status", "in_transit")
    expect(page.locator("#decl-table tr[data-id='D-NEW-1']")).to_have_count(0)
    expect(page.locator("#decl-table tr[data-id='D-LIST-1']")).to_have_count(1)
    page.select_option("#decl-status", "")
    page.fill("#decl-search", "D-")
    keep_for_docs(console, "declarations")


def test_officer_does_not_get_the_declaration_form_or_the_audit_link(
    console: Console, console_server: ConsoleServer
):
    console.login(ACCOUNTS["officer"])
    expect(console.page.locator("#who")).to_contain_text("关员")
    nav = console.page.locator("#pages")
    expect(nav.locator("a[href='/alarms']")).to_be_visible()
    expect(nav.locator("a[href='/audit']")).to_be_hidden()
    expect(nav.locator("a[href='/declarations']")).to_be_hidden()
    console.goto("/declarations")
    expect(console.page.locator("#decl-table[data-loaded='1']")).to_be_attached()
    expect(console.page.locator("#decl-form")).to_be_hidden()
    # English on request, on the new pages as well.
    console.page.select_option("#lang", "en")
    expect(nav.locator("a[href='/alarms']")).to_have_text("Alarms")
    expect(console.page.locator("#decl-table th").first).to_have_text("Trip")


def test_gate_lanes_without_passages_say_so(browser: Browser, tmp_path: Path):
    # A server of its own: other modules pass gates on the package's shared one.
    with (
        running_console_server(tmp_path, ConsoleSettings()) as server,
        console_tab(browser, server.base_url) as console,
    ):
        console.login(ACCOUNTS["officer"])
        expect(console.page.locator("#who")).to_contain_text("关员")
        console.goto("/gates")
        state = console.page.locator("#passages-state")
        expect(state).to_have_attribute("data-state", "empty")  # GET /passages answered []
        expect(state).to_contain_text("暂无过卡记录")
        expect(console.page.locator("#lanes article")).to_have_count(0)
        console.screenshot("gates-empty")


def reading(
    number: str, confidence: float, ok: bool = True, review: bool = False
) -> dict[str, object]:
    return {
        "number": number,
        "confidence": confidence,
        "check_digit_ok": ok,
        "needs_review": review,
    }


def test_gate_lanes_show_real_passages_and_an_officer_overrides_one(
    console: Console, console_server: ConsoleServer
):
    """Passages made through the server's real path (store ingest → GateService: decided,
    recorded, audited, signed command sent), then a real override through the page."""
    svc = console_server.services
    now = utc_now()
    body = declaration(
        declaration_id="D-GATE-1", vehicle_id="TRK-G1", plate="粤A·GT001",
        containers=["GATU3000030"], origin_gate="G-NANSHA-2", route_id="R-NS-BY",
    )  # fmt: skip
    svc.store.create_declaration(body, now - timedelta(hours=1), "supervisor.one")
    console_server.store_lock("TRK-G1", "EL-1", "sealed", now - timedelta(minutes=30))
    # Lane L1: an older passage, then one with an undeclared container read badly.
    console_server.pass_gate(
        "G-NANSHA-2", "P-G0", now - timedelta(minutes=20), lane="L1",
        containers=["ZHEU5000013"], plate="粤A·ZZ999",
    )  # fmt: skip
    console_server.pass_gate(
        "G-NANSHA-2", "P-G1", now - timedelta(minutes=5), lane="L1", plate="粤A·GT001",
        readings=[reading("GATU3000030", 0.97),
                  reading("GATU3000045", 0.61, ok=False, review=True)],
        images=["/media/passages/P-G1/front.jpg", "/media/passages/P-G1/rear.jpg"],
    )  # fmt: skip
    # Lane L2: a plate that needs review and no container read.
    console_server.pass_gate(
        "G-NANSHA-2", "P-G2", now - timedelta(minutes=4), lane="L2", containers=[],
        plate_reading={"text": "粤B·77777", "confidence": 0.52, "needs_review": True},
    )  # fmt: skip
    held = console_server.gates.gates.get_passage("P-G1")
    assert held is not None and held["decision"] == "hold" and held["trip_id"] == "D-GATE-1"
    assert held["reason_codes"] == ["container_review"]
    assert [c.action for c in console_server.gate_commands("P-G1")] == ["hold"]

    console.login(ACCOUNTS["officer"])
    expect(console.page.locator("#who")).to_contain_text("关员")
    console.goto("/gates")
    page = console.page
    expect(page.locator("#lanes[data-loaded='1']")).to_be_attached()
    lane = page.locator("#lanes article[data-passage='P-G1']")
    expect(lane).to_have_attribute("data-lane", "G-NANSHA-2 · L1")
    expect(page.locator("#lanes article[data-passage='P-G0']")).to_have_count(0)  # older
    expect(page.locator("#passages-table tr[data-passage='P-G0']")).to_have_count(1)
    expect(lane).to_have_class(re.compile(r"\bdecision-hold\b"))
    expect(lane.locator(".decision")).to_have_text("拦截")
    reasons = lane.locator("ul.reasons li")
    expect(reasons).to_have_count(len(held["reasons"]))
    expect(reasons.locator("xpath=self::*[@data-code='container_review']")).to_contain_text(
        "集装箱号识别需复核"
    )
    expect(reasons.locator(".raw")).to_have_text(held["reasons"])
    expect(lane.locator("li[data-review='1']")).to_contain_text("GATU3000045")
    expect(lane.locator("li[data-review='1']")).to_contain_text("61%")
    expect(lane.locator("li[data-review='1'] .bad-digit")).to_have_text("校验位错误")
    # The gate named two images but uploaded none yet (uploads: tests/console/test_evidence.py).
    expect(lane.locator(".evidence")).to_have_attribute("data-count", "0")
    expect(lane.locator(".evidence")).to_have_text("图像上传中…")
    plate_lane = page.locator("#lanes article[data-passage='P-G2']")
    expect(plate_lane.locator("li[data-review='1']")).to_contain_text("粤B·77777")
    console.screenshot("gates")

    # The override: no comment, no request; with one, the decision changes for real.
    lane.locator(".override-open").click()
    expect(page.locator("#action-submit")).to_be_disabled()
    page.locator("#action-dialog form").evaluate("f => f.requestSubmit()")
    expect(page.locator("#action-dialog")).to_be_visible()
    expect(page.locator("#override-action")).to_have_value("open")
    page.fill("#action-comment", "人工核对箱号无误，放行")
    page.click("#action-submit")
    expect(page.locator("#action-dialog")).to_have_count(0)
    expect(lane).to_have_attribute("data-decision", "open")
    expect(lane.locator(".decision")).to_have_text("放行")
    expect(lane.locator(".override")).to_have_attribute("data-by", "officer.one")
    expect(lane.locator(".override")).to_contain_text("原判定：拦截")
    expect(lane.locator(".override q")).to_have_text("人工核对箱号无误，放行")
    expect(page.locator("#passages-table tr[data-passage='P-G1']")).to_have_attribute(
        "data-decision", "open"
    )
    keep_for_docs(console, "gates")

    status, passage = console.api("GET", "/api/v1/passages/P-G1")
    assert status == 200 and (passage["decision"], passage["effective"]) == ("hold", "open")
    assert (passage["override"]["by"], passage["override"]["comment"]) == (
        "officer.one",
        "人工核对箱号无误，放行",
    )
    entries, _ = list_entries(
        svc.store.engine, AuditQuery(action="passage.override", object_id="P-G1")
    )
    assert [(e.actor, json.loads(e.details)["comment"], json.loads(e.details)["previous"])
            for e in entries] == [("officer.one", "人工核对箱号无误，放行", "hold")]  # fmt: skip
    assert [(c.action, c.reasons) for c in console_server.gate_commands("P-G1")] == [
        ("hold", held["reasons"]),
        ("open", ["officer override: 人工核对箱号无误，放行"]),
    ]


def test_every_string_has_both_languages():
    source = (STATIC_DIR / "i18n.js").read_text(encoding="utf-8")
    zh, en = source.split("\n  en: {", 1)
    key = re.compile(r'^\s+"([\w.]+)": ', re.M)
    zh_keys, en_keys = key.findall(zh), key.findall(en.split("\n};", 1)[0])
    assert len(zh_keys) == len(set(zh_keys)) and len(en_keys) == len(set(en_keys))
    assert set(zh_keys) == set(en_keys)
    used: set[str] = set()
    for page in STATIC_DIR.glob("*.html"):
        used |= set(re.findall(r'data-i18n="([\w.]+)"', page.read_text(encoding="utf-8")))
    for module in STATIC_DIR.glob("*.js"):
        used |= set(re.findall(r'\bt\("([\w]+\.[\w.]*\w)"', module.read_text(encoding="utf-8")))
    assert sorted(used - set(zh_keys)) == []
    assert ARTIFACTS.name == "console"

"""The reports page in a real browser, over a server of its own holding a fortnight of real
traffic (trips, gate decisions and alarms made through the services: tests/server/reports/
fleet.py): the charts show the hand-worked numbers, a CSV downloads, officers are refused."""

from __future__ import annotations

import csv
import io
import os
import re
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from playwright.sync_api import Locator, expect

from server.app import create_app
from server.console.config import ConsoleSettings
from server.console.web import ASSETS_HINT, missing_assets
from tests.console.conftest import ACCOUNTS, AUTH, ROOT, Console, ConsoleServer
from tests.server.assembled import assemble, server_config
from tests.server.auth.session import add_account
from tests.server.reports.fleet import FLEET_LOCK_SECRETS, Fleet, standard_scenario

DOCS_IMAGE = ROOT / "docs" / "img" / "console-reports.png"


@pytest.fixture(scope="module")
def console_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleServer]:
    """This module's own server (the package's one is shared with pages that count rows):
    SQLite, the demo geography, the fleet's lock secrets, a GateService that signs, and
    `standard_scenario`."""
    missing = missing_assets(ConsoleSettings())
    if missing:
        pytest.fail(f"{ASSETS_HINT}; missing: {', '.join(map(str, missing))}")
    folder = tmp_path_factory.mktemp("reports-server")
    services, commands = assemble(server_config(folder, FLEET_LOCK_SECRETS))
    standard_scenario(Fleet(services, services.gates))
    for role, username in ACCOUNTS.items():
        add_account(services, username, role)  # type: ignore[arg-type]
    app = create_app(services, auth=AUTH, console=ConsoleSettings())
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, name="reports-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("the reports server did not start")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield ConsoleServer(f"http://127.0.0.1:{port}", services, commands)
    finally:
        server.should_exit = True
        thread.join(10)
        services.store.close()


def bar(section: Locator, key: str) -> Locator:
    return section.locator(f"svg g.bar[data-key='{key}']")


def values(section: Locator) -> list[str]:
    return [v or "" for v in section.locator("svg g.bar").evaluate_all(
        "bars => bars.map(b => b.getAttribute('data-value'))")]  # fmt: skip


def test_supervisor_sees_the_reports_charts_and_downloads_a_csv(console: Console) -> None:
    page = console.page
    page.set_viewport_size({"width": 1400, "height": 1520})  # the whole page in the screenshot
    console.login(ACCOUNTS["supervisor"])
    expect(page.locator("#who")).to_contain_text("科长")
    page.locator("#pages a[href='/reports']").click()
    expect(page).to_have_url(re.compile(r"/reports\?from=\d{4}-\d\d-\d\d&to=\d{4}-\d\d-\d\d$"))
    expect(page.locator("#transit-times")).to_have_attribute("data-state", "loaded")
    expect(page.locator("#pages a[aria-current='page']")).to_have_text("统计报表")

    # The fortnight of the scenario, entered as calendar days in Asia/Shanghai.
    page.fill("#report-window input[name=from]", "2026-11-01")
    page.fill("#report-window input[name=to]", "2026-11-15")
    page.click("#report-apply")
    expect(page).to_have_url(console.base_url + "/reports?from=2026-11-01&to=2026-11-15")
    expect(page.locator("#report-period")).to_contain_text(
        "2026/11/01 00:00:00 至 2026/11/16 00:00:00（Asia/Shanghai）"
    )
    for name in ("transit-times", "alarms-by-type", "alarms-by-route", "alarms-by-day"):
        expect(page.locator(f"#{name}")).to_have_attribute("data-state", "loaded")

    transit = page.locator("#transit-times")
    hp = transit.locator("#transit-table tr[data-route='R-HP-BY']")
    expect(hp.locator("td.trips")).to_have_text("3")
    expect(hp.locator("td.min")).to_have_text("50.0")
    expect(hp.locator("td.p50")).to_have_text("70.0")
    expect(hp.locator("td.p90")).to_have_text("90.0")
    expect(hp.locator("td.max")).to_have_text("95.0")
    expect(transit.locator("#transit-table tr[data-route='R-NS-BY'] td.p50")).to_have_text("130.0")
    histogram = transit.locator("figure[data-route='R-HP-BY']")
    expect(histogram.locator("figcaption")).to_contain_text("每格 10 分钟")
    expect(histogram.locator("g.bar")).to_have_count(9)  # 50–60 … 130–140 min
    assert values(histogram) == ["1", "0", "1", "0", "1", "0", "0", "0", "0"]
    expect(bar(histogram, "90-100").locator("rect title")).to_have_text("90–100 分钟：1 车次")

    by_type = page.locator("#alarms-by-type")
    expect(by_type.locator(".total")).to_have_text("共 7 条报警（含重复共 9 次）")
    expect(bar(by_type, "LOCK_TAMPER")).to_have_attribute("data-value", "2")
    expect(bar(by_type, "LOCK_TAMPER").locator("text.label")).to_contain_text("关锁破坏")
    expect(bar(by_type, "LOCK_TAMPER").locator("rect.sev-critical")).to_have_count(1)
    expect(bar(by_type, "ROUTE_DEVIATION").locator("text.value")).to_have_text("1")
    assert values(by_type) == ["2", "1", "1", "1", "1", "1"]

    by_route = page.locator("#alarms-by-route")
    assert values(by_route) == ["5", "1", "1"]
    expect(bar(by_route, "").locator("text.label")).to_contain_text("无关联行程")

    by_day = page.locator("#alarms-by-day")
    expect(by_day.locator("g.bar")).to_have_count(15)
    expect(bar(by_day, "2026-11-12")).to_have_attribute("data-value", "2")
    expect(bar(by_day, "2026-11-11")).to_have_attribute("data-value", "1")  # 01:00 in Shanghai
    expect(bar(by_day, "2026-11-10")).to_have_attribute("data-value", "0")
    expect(bar(by_day, "2026-11-01").locator("text.label")).to_have_text("11-01")

    gates = page.locator("#gate-release")
    expect(gates).to_have_attribute("data-state", "loaded")
    expect(page.locator("#overall-rate")).to_have_text("80.0%")
    expect(page.locator("#overall-detail")).to_have_text(
        "共 10 次过卡：自动放行 8，拦截 1，人工改判 1"
    )
    expect(gates.locator("tr[data-gate='G-BAIYUN-1'] td.rate")).to_have_text("75.0%")
    expect(gates.locator("tr[data-gate='G-BAIYUN-1'] td.overridden")).to_have_text("1")
    expect(bar(gates, "G-HUANGPU-1").locator("text.value")).to_have_text("80.0%")

    # Download the alarms-by-day CSV the way an officer does, and read it back.
    with page.expect_download() as info:
        by_day.locator("a.csv").click()
    download = info.value
    assert download.suggested_filename == (
        "bondwatch-alarms-by-day-20261031T160000Z-20261115T160000Z.csv"
    )
    data = Path(download.path()).read_bytes()
    assert data.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(data.decode("utf-8")[1:], newline="")))
    assert rows[0] == ["day", "alarms", "occurrences", "critical", "major", "minor", "warning"]
    assert rows[12] == ["2026-11-12", "2", "2", "1", "0", "1", "0"]
    assert rows[-1] == ["*", "7", "9", "2", "2", "2", "1"]

    path = console.screenshot("reports")
    if os.environ.get("BONDWATCH_UPDATE_DOC_IMAGES") == "1":
        shutil.copyfile(path, DOCS_IMAGE)

    # English: the same numbers, every label translated.
    page.select_option("#lang", "en")
    expect(by_type.locator("h2 span")).to_have_text("Alarms by type")
    expect(bar(by_type, "LOCK_TAMPER").locator("text.label")).to_contain_text("Lock tamper")
    expect(by_type.locator(".total")).to_have_text("7 alarms (9 occurrences with repeats)")
    expect(page.locator("#overall-detail")).to_contain_text("8 opened automatically")
    expect(transit.locator("#transit-table th").nth(3)).to_have_text("Median (min)")
    expect(page.locator("#pages a[href='/reports']")).to_have_text("Reports")


def test_officer_has_no_reports_link_and_is_refused(console: Console) -> None:
    page = console.page
    console.login(ACCOUNTS["officer"])
    expect(page.locator("#who")).to_contain_text("关员")
    expect(page.locator("#pages a[href='/reports']")).to_be_hidden()
    console.goto("/reports")
    expect(page.locator("#report-error")).to_contain_text("无权限")
    expect(page.locator("#gate-release")).to_have_attribute("data-state", "error")
    expect(page.locator("svg.chart")).to_have_count(0)
    status, body = console.api("GET", "/api/v1/reports/alarms-by-type.csv")
    assert status == 403 and body["error"]["code"] == "forbidden"


def test_admin_reads_reports_for_the_default_30_days(console: Console) -> None:
    page = console.page
    console.login(ACCOUNTS["admin"])
    expect(page.locator("#who")).to_contain_text("管理员")
    page.locator("#pages a[href='/reports']").click()
    expect(page.locator("#alarms-by-day")).to_have_attribute("data-state", "loaded")
    expect(page.locator("#alarms-by-day g.bar")).to_have_count(30)
    start = page.locator("#report-window input[name=from]").input_value()
    end = page.locator("#report-window input[name=to]").input_value()
    expect(page.locator("#alarms-by-day g.bar").last).to_have_attribute("data-key", end)
    expect(page.locator("#alarms-by-day g.bar").first).to_have_attribute("data-key", start)
    page.click("button.last-days[data-days='7']")
    expect(page.locator("#alarms-by-day g.bar")).to_have_count(7)
    expect(page.locator("#alarms-by-day g.bar").last).to_have_attribute("data-key", end)

"""Each officer's own time zone: two officers, one in the default zone (Asia/Shanghai),
one who picks Europe/Berlin in the header, see the same moments on every page in their own
zone — both browsers set to Shanghai time, so only the account decides."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import Browser, expect

from tests.console.conftest import Console, ConsoleServer, console_tab
from tests.server.auth.session import add_account
from tests.server.conftest import declaration

T0 = datetime(2026, 11, 23, 8, 15, 2, tzinfo=UTC)  # declared; started an hour later
TRIP = "D-TZ-1"


@pytest.fixture(scope="module")
def moments(console_server: ConsoleServer) -> dict[str, str]:
    """A trip declared at T0, started at T0+1 h, an alarm at T0+2 h, a passage at T0+3 h."""
    svc = console_server.services
    add_account(svc, "officer.sh", "officer")
    add_account(svc, "officer.de", "officer")
    body = declaration(declaration_id=TRIP, vehicle_id="TRK-TZ1", containers=["TZNU6000014"])
    svc.store.create_declaration(body, T0, "supervisor.one")
    svc.store.start_trip(TRIP, T0 + timedelta(hours=1))
    alarm = console_server.alarms.raise_(
        TRIP, "TRK-TZ1", "UNPLANNED_STOP", "minor", T0 + timedelta(hours=2), None, "stop"
    )
    console_server.pass_gate(
        "G-NANSHA-2", "P-TZ-1", T0 + timedelta(hours=3), lane="L9", containers=["TZNU6000014"]
    )
    return {"alarm": str(alarm.alarm_id)}


@pytest.fixture
def berlin(browser: Browser, console_server: ConsoleServer) -> Iterator[Console]:
    with console_tab(browser, console_server.base_url) as tab:
        yield tab


def shown_times(tab: Console, moments: dict[str, str]) -> dict[str, str]:
    """The four moments as the pages show them to the logged-in officer."""
    page = tab.page
    seen = {}
    tab.goto("/declarations")
    expect(page.locator("#decl-table[data-loaded='1']")).to_be_attached()
    row = page.locator(f"#decl-table tr[data-id='{TRIP}'] td")
    seen["declared"] = row.nth(4).inner_text()
    seen["started"] = row.nth(5).inner_text()
    tab.goto(f"/trip?id={TRIP}")
    expect(page.locator(f"#timeline[data-trip='{TRIP}']")).to_be_attached()
    assert page.locator("#trip-summary .v-trip-started").inner_text() == seen["started"]
    tab.goto(f"/alarms?state=all&id={moments['alarm']}")
    expect(page.locator("#alarm-fields .v-alarms-id")).to_have_text(moments["alarm"])
    seen["alarm"] = page.locator("#alarm-fields .v-alarms-first_at").inner_text()
    tab.goto("/gates")
    passage = page.locator("#passages-table tr[data-passage='P-TZ-1'] td").first
    expect(passage).to_be_visible()
    seen["passage"] = passage.inner_text()
    return seen


def test_two_officers_see_the_same_moments_in_their_own_zones(
    console: Console, berlin: Console, moments: dict[str, str]
):
    console.login("officer.sh")
    expect(console.page.locator("#who")).to_contain_text("Officer.Sh")
    zone = console.page.locator("#tz")
    expect(zone).to_have_value("")  # the default
    expect(zone).to_have_attribute("data-zone", "Asia/Shanghai")
    expect(zone.locator("option").first).to_have_text("默认（Asia/Shanghai）")
    expect(zone).to_have_attribute("aria-label", "时区")

    berlin.login("officer.de")
    expect(berlin.page.locator("#who")).to_contain_text("Officer.De")
    berlin.goto("/declarations")
    page = berlin.page
    expect(page.locator("#decl-table[data-loaded='1']")).to_be_attached()
    created = page.locator(f"#decl-table tr[data-id='{TRIP}'] td").nth(4)
    expect(created).to_have_text("2026/11/23 16:15:02")  # Shanghai until it picks a zone
    page.select_option("#tz", "Europe/Berlin")
    expect(page.locator("#tz")).to_have_attribute("data-zone", "Europe/Berlin")
    expect(created).to_have_text("2026/11/23 09:15:02")  # at once, without reloading
    berlin.screenshot("timezone-berlin")

    # Every page, and after a new page load (the zone is the account's, not the page's).
    assert shown_times(berlin, moments) == {
        "declared": "2026/11/23 09:15:02",
        "started": "2026/11/23 10:15:02",
        "alarm": "2026/11/23 11:15:02",
        "passage": "2026/11/23 12:15:02",
    }
    assert shown_times(console, moments) == {
        "declared": "2026/11/23 16:15:02",
        "started": "2026/11/23 17:15:02",
        "alarm": "2026/11/23 18:15:02",
        "passage": "2026/11/23 19:15:02",
    }
    _, me = berlin.api("GET", "/api/v1/auth/me")
    assert (me["time_zone"], me["account"]["time_zone"]) == ("Europe/Berlin", "Europe/Berlin")
    _, me = console.api("GET", "/api/v1/auth/me")
    assert (me["time_zone"], me["account"]["time_zone"]) == ("Asia/Shanghai", None)

    # English dates follow the zone too.
    page.select_option("#lang", "en")
    berlin.goto("/declarations")
    expect(created).to_have_text("11/23/2026, 09:15:02")


def test_audit_search_reads_typed_times_in_the_officers_zone(
    console: Console, console_server: ConsoleServer, moments: dict[str, str]
):
    """The declaration was audited at 08:15:02Z = 09:15:02 in Berlin: a search from that
    local second finds it, one from the next second does not."""
    add_account(console_server.services, "supervisor.de", "supervisor")
    console.login("supervisor.de")
    expect(console.page.locator("#who")).to_contain_text("Supervisor.De")
    _, me = console.api("GET", "/api/v1/auth/me")
    status, _ = console.api(
        "PATCH", "/api/v1/auth/me", {"time_zone": "Europe/Berlin"},
        {"X-CSRF-Token": me["csrf_token"]},
    )  # fmt: skip
    assert status == 200
    console.goto(f"/audit?object_id={TRIP}&action=declaration.create")
    page = console.page
    expect(page.locator("#audit-table[data-loaded]")).to_be_attached()
    line = page.locator("#audit-table tbody tr[data-action='declaration.create']")
    expect(line).to_have_count(1)
    expect(line.locator("td").nth(1)).to_have_text("2026/11/23 09:15:02")
    page.fill("#audit-filters input[name=since]", "2026-11-23T09:15:02")
    page.click("#audit-search")
    expect(line).to_have_count(1)
    page.fill("#audit-filters input[name=since]", "2026-11-23T09:15:03")
    page.click("#audit-search")
    expect(line).to_have_count(0)

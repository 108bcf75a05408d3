"""Recording a declaration's release from the declarations page: supervisors record the
electronic release record (or a request for inspection) in a dialog; the list shows it, the
audit log names the account; officers get no button and the API refuses them."""

from __future__ import annotations

import json
from datetime import timedelta

from playwright.sync_api import expect

from contract.ids import utc_now
from server.audit import AuditQuery, list_entries
from server.gates.store import GateStore
from tests.console.conftest import ACCOUNTS, Console, ConsoleServer
from tests.server.conftest import declaration


def declare(server: ConsoleServer, declaration_id: str, vehicle_id: str) -> None:
    body = declaration(declaration_id=declaration_id, vehicle_id=vehicle_id,
                       containers=["RELU4000014"])  # fmt: skip
    server.services.store.create_declaration(body, utc_now() - timedelta(minutes=3), "test")


def test_supervisor_records_a_release_and_an_inspection(
    console: Console, console_server: ConsoleServer
):
    declare(console_server, "D-REL-1", "TRK-R1")
    declare(console_server, "D-REL-2", "TRK-R2")
    console.login(ACCOUNTS["supervisor"])
    expect(console.page.locator("#who")).to_contain_text("科长")
    console.goto("/declarations")
    page = console.page
    expect(page.locator("#decl-table[data-loaded='1']")).to_be_attached()
    row = page.locator("#decl-table tr[data-id='D-REL-1']")
    expect(row.locator("td.release")).to_have_text("—")

    row.locator(".release-open").click()
    dialog = page.locator("#release-dialog")
    expect(dialog.locator("h2")).to_have_text("记录放行 · D-REL-1")
    expect(page.locator("#release-submit")).to_be_disabled()  # no release number yet
    # The time is typed in the officer's zone (Asia/Shanghai): 16:15:02 there is 08:15:02Z.
    page.fill("#release-id", "R-2026-000123")
    page.fill("#released-at", "2026-11-23T16:15:02")
    page.click("#release-submit")
    expect(dialog).to_have_count(0)
    expect(page.locator("#release-message")).to_have_text(
        "已记录申报 D-REL-1 的放行 R-2026-000123；行程状态：已申报"
    )
    cell = row.locator("td.release")
    expect(cell).to_have_attribute("data-release", "R-2026-000123")
    expect(cell.locator(".what")).to_have_text("R-2026-000123")
    expect(cell).to_contain_text("supervisor.one 记录于")
    console.screenshot("declaration-release")

    record = GateStore(console_server.services.store.engine).latest_release("D-REL-1")
    assert record is not None and record.release_id == "R-2026-000123" and not record.inspect
    assert record.released_at is not None
    assert record.released_at.isoformat() == "2026-11-23T08:15:02+00:00"
    entries, _ = list_entries(
        console_server.services.store.engine,
        AuditQuery(action="declaration.release", object_id="D-REL-1"),
    )
    assert [(e.actor, json.loads(e.details)) for e in entries] == [
        (
            "supervisor.one",
            {"release_id": "R-2026-000123", "released_at": "2026-11-23T08:15:02.000Z",
             "inspect": False},
        )
    ]  # fmt: skip

    # A refusal stays in the dialog; then a request for inspection on the other one.
    other = page.locator("#decl-table tr[data-id='D-REL-2']")
    other.locator(".release-open").click()
    page.fill("#release-id", "R-2026-000124")
    page.fill("#released-at", "")
    page.locator("#release-dialog form").evaluate("f => f.requestSubmit()")
    expect(page.locator("#release-dialog")).to_be_visible()  # no time: not sent
    page.locator("#release-dialog input[value='inspect']").check()
    expect(page.locator("#release-id")).to_be_disabled()
    page.click("#release-submit")
    expect(page.locator("#release-dialog")).to_have_count(0)
    expect(page.locator("#release-message")).to_have_text(
        "已记录申报 D-REL-2 要求查验；行程状态：已申报"
    )
    expect(other.locator("td.release")).to_have_attribute("data-inspect", "1")
    expect(other.locator("td.release .what")).to_have_text("要求查验")
    inspect = GateStore(console_server.services.store.engine).latest_release("D-REL-2")
    assert inspect is not None and inspect.inspect and inspect.release_id is None
    # The audit page lists both, naming the supervisor.
    console.goto("/audit?action=declaration.release&actor=supervisor.one")
    lines = page.locator("#audit-table tbody tr[data-action='declaration.release']")
    expect(lines).to_have_count(2)
    expect(lines.first.locator(".action")).to_have_text("记录放行")
    expect(lines.first.locator(".actor")).to_have_text("supervisor.one")


def test_officer_cannot_record_a_release(console: Console, console_server: ConsoleServer):
    declare(console_server, "D-REL-3", "TRK-R3")
    console.login(ACCOUNTS["officer"])
    expect(console.page.locator("#who")).to_contain_text("关员")
    console.goto("/declarations")
    page = console.page
    expect(page.locator("#decl-table[data-loaded='1']")).to_be_attached()
    row = page.locator("#decl-table tr[data-id='D-REL-3']")
    expect(row).to_have_count(1)
    expect(row.locator(".release-open")).to_be_hidden()
    expect(page.locator("#decl-table .release-open:visible")).to_have_count(0)
    _, me = console.api("GET", "/api/v1/auth/me")
    status, error = console.api(
        "POST",
        "/api/v1/declarations/D-REL-3/release",
        {"release_id": "R-X", "released_at": "2026-11-23T08:15:02Z"},
        {"X-CSRF-Token": me["csrf_token"]},
    )
    assert status == 403 and error["error"]["code"] == "forbidden"
    assert "supervisor or integration" in error["error"]["message"]
    assert GateStore(console_server.services.store.engine).latest_release("D-REL-3") is None
    entries, _ = list_entries(
        console_server.services.store.engine,
        AuditQuery(action="declaration.release", object_id="D-REL-3"),
    )
    assert entries == []

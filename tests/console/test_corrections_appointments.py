"""In headless Chromium: an officer corrects a held passage's misread container number
(a bad check digit refused in the dialog, then the server decides again and sends a signed
`open`), and the appointments page lists, books and cancels appointments."""

from __future__ import annotations

import json
import re
from datetime import timedelta

from playwright.sync_api import expect

from contract.ids import format_ts, utc_now
from contract.payloads import LaneStatus, decode_edge
from server.audit import AuditQuery, list_entries
from server.gates.appointment_book import NewAppointment
from server.store.database import IncomingMessage
from tests.console.conftest import ACCOUNTS, Console, ConsoleServer

GATE = "G-BAIYUN-1"
LANE = "L9"  # a lane of this test's own on the shared console server
BOOKED = "TGHU5623000"


def lane_holds(server: ConsoleServer, passage_id: str) -> None:
    """The gate's retained lane state, as the ingest stores it: the truck waits on hold."""
    seq = server.seq.get(GATE, 0) + 1
    server.seq[GATE] = seq
    raw = json.dumps({"node_id": GATE, "seq": seq, "ts": format_ts(utc_now()), "lane": LANE,
                      "state": "hold", "passage_id": passage_id, "signal": "red",
                      "reason": "server decided hold"})  # fmt: skip
    message = decode_edge("lane", raw)
    assert isinstance(message, LaneStatus)
    fresh = server.services.store.store_messages([IncomingMessage("lane", message, raw, utc_now())])
    assert len(fresh) == 1


def test_an_officer_corrects_a_misread_number_and_the_gate_opens(
    console: Console, console_server: ConsoleServer
) -> None:
    now = utc_now()
    console_server.gates.appointments.create(
        NewAppointment(
            plate="粤A·CR001", containers=(BOOKED,), gate_id=GATE, direction="in",
            window_start=now - timedelta(hours=1), window_end=now + timedelta(hours=2),
            purpose="入库", enterprise={"code": "4401", "name": "示范"},
            appointment_id="APT-CONSOLE-1",
        ),
        ACCOUNTS["supervisor"],
    )  # fmt: skip
    misread = {"number": "TGHU5623001", "confidence": 0.71, "check_digit_ok": False,
               "needs_review": False}  # fmt: skip
    console_server.pass_gate(GATE, "P-CORR-1", now - timedelta(seconds=20), lane=LANE,
                             plate="粤A·CR001", readings=[misread])  # fmt: skip
    held = console_server.gates.gates.get_passage("P-CORR-1")
    assert held is not None and held["reason_codes"] == ["check_digit"]
    assert held["appointment_id"] == "APT-CONSOLE-1"
    lane_holds(console_server, "P-CORR-1")

    console.login(ACCOUNTS["officer"])
    expect(console.page.locator("#who")).to_contain_text("关员")
    console.goto("/gates")
    page = console.page
    card = page.locator("#lanes article[data-passage='P-CORR-1']")
    expect(card).to_have_attribute("data-decision", "hold")
    expect(card.locator(".appointment a")).to_have_text("APT-CONSOLE-1")
    card.locator(".correct-open").click()
    expect(page.locator("#correct-containers")).to_have_value("TGHU5623001")
    expect(page.locator("#correct-plate")).to_have_value("粤A·CR001")
    # a number whose check digit fails is refused, and nothing changes
    page.fill("#correct-containers", "TGHU5623002")
    page.fill("#action-comment", "箱门号码现场核对")
    page.click("#action-submit")
    expect(page.locator("#action-error")).to_contain_text("check digit")
    expect(page.locator("#action-dialog")).to_be_visible()
    assert console_server.gate_commands("P-CORR-1")[-1].action == "hold"
    # the number as read at the lane: decided again, opened
    page.fill("#correct-containers", BOOKED.lower())
    page.click("#action-submit")
    expect(page.locator("#action-dialog")).to_have_count(0)
    expect(card).to_have_attribute("data-decision", "open")
    expect(card.locator(".correction")).to_have_attribute("data-by", "officer.one")
    expect(card.locator(".correction")).to_contain_text("原判定：拦截")
    expect(card.locator(".corrected-reading")).to_contain_text(BOOKED)
    expect(card.locator("li[data-review='0']").first).to_contain_text("TGHU5623001")  # OCR kept
    expect(card.locator(".correct-open")).to_have_count(0)  # not held any more
    console.screenshot("gates-corrected")

    commands = console_server.gate_commands("P-CORR-1")
    assert [c.action for c in commands] == ["hold", "open"]
    assert (commands[-1].lane, commands[-1].reasons) == (LANE, [])
    entries, _ = list_entries(
        console_server.services.store.engine,
        AuditQuery(action="passage.correct", object_id="P-CORR-1"),
    )
    assert len(entries) == 1 and entries[0].actor == "officer.one"
    details = json.loads(entries[0].details)
    assert details["before"]["containers"][0]["number"] == "TGHU5623001"
    assert details["after"]["containers"][0]["number"] == BOOKED
    status, booking = console.api("GET", "/api/v1/appointments/APT-CONSOLE-1")
    assert status == 200 and booking["used_by_passage"] == "P-CORR-1"


def test_the_appointments_page_books_lists_and_cancels(
    console: Console, console_server: ConsoleServer
) -> None:
    page = console.page
    console.login(ACCOUNTS["supervisor"])
    expect(page.locator("#who")).to_contain_text("科长")
    console.goto("/appointments")
    expect(page.locator("#appt-table[data-loaded='1']")).to_be_attached()
    form = page.locator("#appt-form")
    expect(form).to_be_visible()
    form.locator("input[name='plate']").fill("粤A·AP777")
    form.locator("input[name='containers']").fill("OOLU7312009")  # a bad check digit
    form.locator("input[name='purpose']").fill("保税仓储入库")
    form.locator("input[name='enterprise.code']").fill("4401960009")
    form.locator("input[name='enterprise.name']").fill("白云示范物流")
    page.select_option("#appt-form select[name='gate_id']", GATE)
    page.click("#appt-submit")
    expect(page.locator(".field-error[data-for='containers']")).to_contain_text("check digit")
    expect(page.locator("#appt-message")).to_have_class(re.compile(r"\bbad\b"))
    form.locator("input[name='containers']").fill("oolu7312008")
    page.click("#appt-submit")
    expect(page.locator("#appt-message")).to_have_class(re.compile(r"\bok\b"))
    row = page.locator("#appt-table tr", has_text="粤A·AP777")
    expect(row).to_have_attribute("data-status", "active")
    expect(row).to_contain_text("OOLU7312008")
    expect(row).to_contain_text("有效")
    booked_id = row.get_attribute("data-id")
    assert booked_id and booked_id.startswith("APT-")
    console.screenshot("appointments")
    # cancelled with a comment, audited
    row.locator(".appt-cancel").click()
    expect(page.locator("#action-submit")).to_be_disabled()
    page.fill("#action-comment", "企业撤回预约")
    page.click("#action-submit")
    expect(page.locator("#action-dialog")).to_have_count(0)
    row = page.locator(f"#appt-table tr[data-id='{booked_id}']")
    expect(row).to_have_attribute("data-status", "cancelled")
    expect(row.locator("q")).to_have_text("企业撤回预约")
    entries, _ = list_entries(
        console_server.services.store.engine,
        AuditQuery(action="appointment.cancel", object_id=booked_id),
    )
    assert [e.actor for e in entries] == ["supervisor.one"]
    # in English too
    page.select_option("#lang", "en")
    expect(page.locator("#appt-table th").first).to_have_text("Appointment")
    expect(row.locator(".status")).to_contain_text("Cancelled")


def test_an_officer_reads_appointments_but_books_none(
    console: Console, console_server: ConsoleServer
) -> None:
    console.login(ACCOUNTS["officer"])
    expect(console.page.locator("#who")).to_contain_text("关员")
    nav = console.page.locator("#pages")
    expect(nav.locator("a[href='/appointments']")).to_be_visible()
    console.goto("/appointments")
    expect(console.page.locator("#appt-table[data-loaded='1']")).to_be_attached()
    expect(console.page.locator("#appt-form")).to_be_hidden()
    expect(console.page.locator(".appt-cancel")).to_have_count(0)
    status, _ = console.api("POST", "/api/v1/appointments", {"plate": "粤A1"})
    assert status == 403

"""Every string the officer sees goes through i18n.js, in Simplified Chinese and English.

Two checks:
- the pages as files: every element's own text, the `<title>`, and every `title`,
  `aria-label`, `placeholder` and `alt` carries its i18n key; every value the scripts
  translate by family (`alarm.type.` + type, `gates.reason.` + code, `audit.action.` + an
  audited action, …) has its string;
- the pages in the browser, on a server of their own holding one trip's whole story: each
  page loaded in Chinese shows no English word and, switched to English in the page, no
  Chinese character — besides the data (ids, names, plates, zone names) and what is marked
  `data-raw` (comments, the server's own sentences, OCR readings, audit details).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from datetime import timedelta
from html.parser import HTMLParser
from typing import get_args

import pytest
from playwright.sync_api import Browser, Page, expect

from contract.ids import utc_now
from contract.payloads import LockEvent
from server.alarms.lifecycle import Action
from server.auth.roles import ROLES
from server.console.config import ConsoleSettings
from server.console.web import STATIC_DIR
from server.gates.decide import REASON_CODES
from server.rules.alarms import ALARM_TYPES
from tests.console.conftest import ACCOUNTS, ConsoleServer, console_tab, running_console_server
from tests.server.conftest import DEMO, declaration

SERVER_DIR = STATIC_DIR.parents[1]
#: Literal text a page may carry without a key: names and symbols, the same in any language.
NEUTRAL = {"BondWatch", "#", "×1", "×10", "×60", "+", "−"}
LABELLED = ("title", "aria-label", "placeholder", "alt")
LETTER = re.compile(r"[^\W\d_]")  # numbers and punctuation need no translation


def strings(language: str) -> dict[str, str]:
    source = (STATIC_DIR / "i18n.js").read_text(encoding="utf-8")
    zh, en = source.split("\n  en: {", 1)
    block = zh.split('"zh-CN": {', 1)[1] if language == "zh-CN" else en.split("\n};", 1)[0]
    pairs = re.findall(r'^\s+"([\w.]+)": "((?:[^"\\]|\\.)*)",?$', block, re.M)
    return dict(pairs)


VOID = {"meta", "link", "input", "br", "img", "hr", "source"}


class PageText(HTMLParser):
    """Text and labelled attributes of one HTML file that do not go through i18n."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[tuple[str, dict[str, str | None]]] = []
        self.problems: list[str] = []
        self.keys: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        for name in LABELLED:
            if name in found and f"data-i18n-{name}" not in found:
                self.problems.append(f"<{tag}> {name}={found[name]!r} has no data-i18n-{name}")
        self.keys |= {v for k, v in found.items() if k.startswith("data-i18n") and v}
        if tag not in VOID:
            self.stack.append((tag, found))

    def handle_endtag(self, tag: str) -> None:
        while self.stack and self.stack.pop()[0] != tag:
            pass  # elements whose end tag HTML lets one leave out (<option>)

    def handle_data(self, data: str) -> None:
        words = data.split()
        if not words or not self.stack:
            return
        tag, attrs = self.stack[-1]
        if tag in ("script", "style") or "data-i18n" in attrs:
            return
        if any(word not in NEUTRAL and LETTER.search(word) for word in words):
            self.problems.append(f"<{tag}> text {data.strip()!r} has no data-i18n")


def test_page_files_carry_a_key_for_every_text_and_label():
    zh = strings("zh-CN")
    problems = []
    for path in sorted(STATIC_DIR.glob("*.html")):
        parser = PageText()
        parser.feed(path.read_text(encoding="utf-8"))
        problems += [f"{path.name}: {p}" for p in parser.problems]
        problems += [f"{path.name}: key {k!r} not in i18n.js" for k in parser.keys - zh.keys()]
        assert re.search(r'<title data-i18n="title\.\w+">', path.read_text(encoding="utf-8")), path
    assert problems == []


def audited_actions() -> set[str]:
    """Every audit action the server writes (found in its sources), alarm actions named."""
    found: set[str] = set()
    call = re.compile(r"audit_(?:append|hook)\(\s*(?:conn|c),\s*[^,]+,\s*f?\"([\w.{}]+)\"", re.S)
    for path in SERVER_DIR.rglob("*.py"):
        found |= set(call.findall(path.read_text(encoding="utf-8")))
    actions = {a for a in found if "{" not in a}
    assert "alarm.{action}" in found, "the alarms' audit call has moved: update this test"
    actions |= {f"alarm.{a}" for a in get_args(Action)}
    return actions


def test_every_value_the_pages_translate_has_a_string_in_both_languages():
    zh, en = strings("zh-CN"), strings("en")
    assert zh.keys() == en.keys()
    families = {
        "alarm.type.": ALARM_TYPES,
        "gates.reason.": REASON_CODES,
        "lock.event.": get_args(LockEvent),
        "role.": ROLES,
        "audit.action.": sorted(audited_actions()),
        "audit.object.": ("alarm", "trip", "passage", "declaration", "account", "session",
                          "api_token"),
        "gates.decision.": ("open", "hold", "pending"),
        "gates.direction.": ("in", "out"),
        "trip.status.": ("declared", "in_transit", "arrived", "released", "held", "closed"),
    }  # fmt: skip
    missing = [prefix + v for prefix, values in families.items() for v in values
               if prefix + v not in zh]  # fmt: skip
    assert missing == []
    assert len(audited_actions()) >= 20
    # A translation is a translation: the English is not the Chinese (names aside).
    same = [k for k in zh if zh[k] == en[k] and re.search(r"[\u3400-\u9fff]", zh[k])]
    assert same == []


# ---- in the browser ---------------------------------------------------------------------

HAN = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
WORD = re.compile(r"[A-Za-z]{2,}")
#: Names that stay as they are in Chinese text.
LATIN_NAMES = {"BondWatch", "Leaflet", "CSV", "API", "UTC"}
DATA_PATTERNS = [
    re.compile(r"[A-Za-z_]+(?:/[A-Za-z0-9_+-]+)+"),  # IANA zone names, km/h
    re.compile(r"(?<![A-Za-z0-9])[A-Z]{4}\d{7}(?![A-Za-z0-9])"),  # container numbers
    re.compile(r"(?<![A-Za-z0-9])[A-Z][A-Z0-9]*(?:[-_][A-Z0-9]+)+(?![A-Za-z0-9])"),  # ids
    re.compile(r"(?<![A-Za-z0-9])[0-9a-f]{12,}(?![A-Za-z0-9])"),  # session and token ids
]
#: Who wrote the test accounts (the audit log names it).
ACTORS = ["test"]
PLATES = ["粤A·I1801"]
TRIP = "D-I18N-1"

#: JS collecting what the officer sees: the document title; text of visible elements
#: (options of visible selects, SVG titles of visible charts); labelled attributes.
VISIBLE_TEXT = """() => {
  const out = [];
  const skip = (el) => el.closest("[data-raw], script, style, template, #lang");
  const shown = (el) => el && el.checkVisibility({ visibilityProperty: true });
  const where = (el) => el.tagName.toLowerCase() + (el.id ? "#" + el.id : "")
    + (typeof el.className === "string" && el.className ? "." + el.className.split(" ")[0] : "");
  const owner = (el) => el.tagName === "OPTION" ? el.closest("select")
    : el.closest("svg") ?? el;
  out.push(["title", document.title]);
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const el = n.parentElement, text = n.textContent.trim();
    if (!text || !el || skip(el) || !shown(owner(el))) continue;
    out.push([where(el), text]);
  }
  for (const el of document.body.querySelectorAll("[title], [aria-label], [placeholder], [alt]")) {
    if (skip(el) || !shown(owner(el))) continue;
    for (const name of ["title", "aria-label", "placeholder", "alt"]) {
      const value = el.getAttribute(name);
      if (value && value.trim()) out.push([where(el) + "@" + name, value.trim()]);
    }
  }
  return out;
}"""


def strip_data(text: str, data: list[str]) -> str:
    if text.endswith("…"):  # a chart label cut short: a name cut short is still a name
        head = DATA_PATTERNS[2].sub(" ", text[:-1]).strip()
        if head and any(value.startswith(head) for value in data):
            return ""
    for value in data:
        text = text.replace(value, " ")
    for pattern in DATA_PATTERNS:
        text = pattern.sub(" ", text)
    return text


def untranslated(seen: list[list[str]], language: str, data: list[str]) -> list[str]:
    bad = []
    for where, text in seen:
        rest = strip_data(text, data)
        if language == "en" and HAN.search(rest):
            bad.append(f"{where}: {text!r}")
        if language == "zh-CN" and set(WORD.findall(rest)) - LATIN_NAMES:
            bad.append(f"{where}: {text!r}")
    return bad


@pytest.fixture(scope="module")
def story_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleServer]:
    """A server of its own with one trip's whole story: declared, sealed, out through the
    departure gate, driven, a lock report, an escalated critical alarm acknowledged, a
    stop alarm, held at the arrival gate, a release record, an officer's override."""
    settings = ConsoleSettings(escalation_check_s=0.5)
    with running_console_server(tmp_path_factory.mktemp("i18n"), settings) as server:
        svc = server.services
        start = utc_now() - timedelta(minutes=50)
        body = declaration(
            declaration_id=TRIP, vehicle_id="TRK-I1", plate=PLATES[0], containers=["ENGU5000028"]
        )
        svc.store.create_declaration(body, start - timedelta(minutes=10), ACCOUNTS["supervisor"])
        server.store_lock("TRK-I1", "EL-1", "sealed", start - timedelta(minutes=5))
        server.pass_gate("G-HUANGPU-1", "P-I1", start, containers=["ENGU5000028"],
                         plate=PLATES[0])  # fmt: skip
        route = [(113.505, 23.087), (113.492, 23.096), (113.478, 23.106), (113.462, 23.119)]
        for i, (lon, lat) in enumerate(route):
            server.store_positions("TRK-I1", [(lon, lat, 45.0)], start + timedelta(minutes=i))
        server.store_lock("TRK-I1", "EL-1", "status", start + timedelta(minutes=10))
        at = start + timedelta(minutes=12)
        tamper = server.alarms.raise_(TRIP, "TRK-I1", "LOCK_TAMPER", "critical", at, route[2],
                                      "rope cut")  # fmt: skip
        at = start + timedelta(minutes=14)
        server.alarms.raise_(TRIP, "TRK-I1", "UNPLANNED_STOP", "minor", at, route[3], "stop")
        deadline = time.monotonic() + 10
        while (found := server.alarms.get(tamper.alarm_id)) is None or not found.escalated_at:
            assert time.monotonic() < deadline, "the escalation task did not run"
            time.sleep(0.1)
        server.alarms.ack(tamper.alarm_id, ACCOUNTS["officer"], "已联系司机核实")
        server.pass_gate("G-BAIYUN-1", "P-I2", start + timedelta(minutes=40),
                         containers=["ENGU5000028"], plate=PLATES[0])  # fmt: skip
        server.gates.record_release(TRIP, "R-I18N-1", start + timedelta(minutes=41), False,
                                    ACCOUNTS["supervisor"])  # fmt: skip
        server.gates.override("P-I2", "open", "人工核验无误", ACCOUNTS["officer"])
        yield server


@pytest.fixture(scope="module")
def data_strings() -> list[str]:
    """What the pages show as data: the geography's names and ids, accounts, plates."""
    names: set[str] = set(PLATES)
    for path in [*sorted((DEMO / "routes").glob("*.geojson")), DEMO / "zones.geojson"]:
        for feature in json.loads(path.read_text(encoding="utf-8"))["features"]:
            props = feature["properties"]
            names |= {props[k] for k in ("name", "route_id", "site_id", "gate_id", "zone_id")
                      if isinstance(props.get(k), str)}  # fmt: skip
    for username in [*ACCOUNTS.values(), *ACTORS]:
        names |= {username, username.title()}
    return sorted(names, key=len, reverse=True)


#: Each page and what says it has drawn its data.
PAGES = {
    "/": "#map[data-ready='1']",
    "/alarms?state=all&id=1": "#alarm-fields .v-alarms-id",
    f"/trip?id={TRIP}": f"#timeline[data-trip='{TRIP}'] li[data-kind='passage']",
    "/gates": "#lanes[data-loaded='1'] article",
    "/declarations": f"#decl-table[data-loaded='1'] tr[data-id='{TRIP}'] td.release[data-release]",
    "/audit": "#audit-table[data-loaded] tbody tr",
    "/reports": "#alarms-by-type[data-state='loaded'] g.bar",
}


def look(page: Page, language: str) -> list[list[str]]:
    expect(page.locator("html")).to_have_attribute("lang", language)
    expect(page.locator("#status[data-state='live']")).to_be_attached()
    page.wait_for_timeout(400)  # pages that read again on a language change (audit)
    seen: list[list[str]] = page.evaluate(VISIBLE_TEXT)
    texts = {text for _, text in seen}
    assert len(seen) > 20 and ("退出" if language == "zh-CN" else "Log out") in texts, seen
    return seen


def test_every_page_in_chinese_then_in_english(
    browser: Browser, story_server: ConsoleServer, data_strings: list[str]
):
    with console_tab(browser, story_server.base_url) as tab:
        tab.goto("/login")
        expect(tab.page.locator("#login-form")).to_be_visible()
        assert untranslated(tab.page.evaluate(VISIBLE_TEXT), "zh-CN", data_strings) == []
        tab.page.select_option("#lang", "en")
        expect(tab.page.locator("#submit")).to_have_text("Sign in")
        assert untranslated(tab.page.evaluate(VISIBLE_TEXT), "en", data_strings) == []
        assert tab.page.title() == "BondWatch — Sign in"
        tab.page.select_option("#lang", "zh-CN")
        assert tab.page.title() == "BondWatch 登录"

        tab.login(ACCOUNTS["supervisor"])
        expect(tab.page.locator("#who")).to_contain_text("科长")
        failures: dict[str, list[str]] = {}
        titles: dict[str, tuple[str, str]] = {}
        for path, ready in PAGES.items():
            tab.goto(path)
            page = tab.page
            expect(page.locator(ready).first).to_be_attached()
            zh_title = page.title()
            failures[f"{path} zh-CN"] = untranslated(look(page, "zh-CN"), "zh-CN", data_strings)
            page.select_option("#lang", "en")
            expect(page.locator("#logout")).to_have_text("Log out")
            failures[f"{path} en"] = untranslated(look(page, "en"), "en", data_strings)
            titles[path] = (zh_title, page.title())
            tab.screenshot("i18n-" + (path.strip("/").split("?")[0] or "map") + "-en")
            page.select_option("#lang", "zh-CN")
        assert {k: v for k, v in failures.items() if v} == {}
        assert titles["/"] == ("BondWatch 转关运输监控", "BondWatch — Bonded transport monitoring")
        assert titles["/gates"] == ("BondWatch 卡口车道", "BondWatch — Gate lanes")
        assert all(zh != en and HAN.search(zh) for zh, en in titles.values()), titles
        assert [e for e in tab.console_errors if "status of 401" not in e] == []


def test_the_check_sees_an_untranslated_string(
    browser: Browser, story_server: ConsoleServer, data_strings: list[str]
):
    """The check can fail: a status line, a label and a title put in by hand are found."""
    with console_tab(browser, story_server.base_url) as tab:
        tab.login(ACCOUNTS["officer"])
        expect(tab.page.locator("#who")).to_contain_text("关员")
        page = tab.page
        expect(page.locator("#status[data-state='live']")).to_be_attached()
        page.evaluate("""() => {
            document.getElementById("status").textContent = "连接中… connecting…";
            document.getElementById("lang").insertAdjacentHTML("afterend",
              '<button type="button" aria-label="language">⚙</button>');
            document.title = "BondWatch 转关运输监控";
        }""")
        found = untranslated(page.evaluate(VISIBLE_TEXT), "zh-CN", data_strings)
        assert found == [
            "span#status.status: '连接中… connecting…'",
            "button@aria-label: 'language'",
        ]
        page.select_option("#lang", "en")
        page.evaluate("""() => { document.title = "BondWatch 转关运输监控"; }""")
        found = untranslated(page.evaluate(VISIBLE_TEXT), "en", data_strings)
        assert found == ["title: 'BondWatch 转关运输监控'"]

"""The console live, in headless Chromium, against the real server process: positions and
alarms go through the real broker, the ingest, the rules and `WS /api/v1/stream`; the
server is killed and started again while the page stays open."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
import yaml
from playwright.sync_api import Browser, Page, Route, WebSocketRoute, expect
from sqlalchemy import update

from contract import topics
from contract.ids import format_ts, utc_now
from contract.payloads import LockReport, Position
from devtools.broker import MosquittoBroker, free_port
from server.alarms import AlarmService
from server.auth.accounts import AccountStore
from server.auth.config import AuthSettings
from server.store import Store, schema
from tests.console.conftest import ACCOUNTS, LOCK_SECRETS, Console
from tests.lock_reports import signed_lock_fields, write_lock_secrets
from tests.server.auth.session import PASSWORD
from tests.server.conftest import DEMO, declaration

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
# Points along the demo route R-HP-BY ([lon, lat]), south-east to north-west.
ROUTE = [(113.505, 23.087), (113.492, 23.096), (113.478, 23.106), (113.462, 23.119)]
ESCALATE_AFTER_S = 4.0


class ServerProcess:
    """`python -m server --config FILE` (what `bondwatch-server` runs), on a fixed port so
    that the page's address stays the same across restarts."""

    def __init__(self, folder: Path, broker: MosquittoBroker) -> None:
        self.folder = folder
        self.port = free_port()
        self.url = f"sqlite:///{folder / 'store.db'}"
        self.config = folder / "server.yaml"
        self.log = folder / "server.log"
        self.base_url = f"http://127.0.0.1:{self.port}"
        config: dict[str, Any] = {
            "broker": {"host": broker.host, "port": broker.port, "client_id": f"rt-{self.port}"},
            "http": {"host": "127.0.0.1", "port": self.port},
            "storage": {"url": self.url},
            "geography": {
                "routes": [str(p) for p in sorted((DEMO / "routes").glob("*.geojson"))],
                "zones": [str(DEMO / "zones.geojson")],
            },
            "ingest": {"batch_wait_ms": 5},
            "gates": {
                "lock_secrets_file": str(
                    write_lock_secrets(folder / "lock-secrets.yaml", LOCK_SECRETS)
                )
            },
            "auth": {"lockout_threshold": 3, "client_max_failures": 50},
            "console": {
                "escalate_after_min": ESCALATE_AFTER_S / 60,
                "escalation_check_s": 0.5,
                "reconnect_max_s": 2,
            },
        }
        self.config.write_text(yaml.safe_dump(config), encoding="utf-8")
        store = Store.open(self.url)
        accounts = AccountStore(store.engine, AuthSettings())
        for role, username in ACCOUNTS.items():
            accounts.create("test", username, username.title(), role, PASSWORD, utc_now())  # type: ignore[arg-type]
        store.close()
        self.proc: subprocess.Popen[bytes] | None = None
        self.seq: dict[str, int] = {}

    def start(self) -> None:
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        offset = self.log.stat().st_size if self.log.exists() else 0
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "server", "--config", str(self.config)],
                cwd=self.folder,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 30
        marker = f"listening on http://127.0.0.1:{self.port}/".encode()
        while marker not in self.log.read_bytes()[offset:]:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                tail = self.log.read_text(encoding="utf-8", errors="replace")[-3000:]
                pytest.fail(f"the server did not start:\n{tail}")
            time.sleep(0.05)
        time.sleep(0.5)  # the ingest subscribes a moment after the HTTP side is up

    def kill(self) -> None:
        """Ends the process the hard way (SIGKILL): a crash, or a power cut."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
            self.proc = None

    # ---- what trucks and the declaration system do ------------------------------------

    def open_trip(self, trip_id: str, vehicle_id: str) -> None:
        store = Store.open(self.url)
        try:
            now = utc_now()
            body = declaration(declaration_id=trip_id, vehicle_id=vehicle_id)
            store.create_declaration(body, now - timedelta(minutes=2), "supervisor.one")
            store.start_trip(trip_id, now - timedelta(minutes=1))
        finally:
            store.close()

    def next_seq(self, node: str) -> int:
        self.seq[node] = self.seq.get(node, 0) + 1
        return self.seq[node]

    def publish(self, messages: list[tuple[str, bytes]]) -> None:
        async def send() -> None:
            async with aiomqtt.Client("127.0.0.1", self.broker_port, identifier="rt-truck") as c:
                for topic, payload in messages:
                    await c.publish(topic, payload, qos=1)

        # In a thread of its own: Playwright's sync API keeps an event loop in this one.
        failed: list[BaseException] = []

        def run() -> None:
            try:
                asyncio.run(send())
            except BaseException as err:
                failed.append(err)

        worker = threading.Thread(target=run, name="rt-publish")
        worker.start()
        worker.join(30)
        assert not failed, failed

    def position(self, node: str, lon: float, lat: float, at: datetime | None = None) -> None:
        msg = Position(
            node_id=node,
            seq=self.next_seq(node),
            ts=at or utc_now(),
            lat=lat,
            lon=lon,
            speed_kmh=48.0,
            course_deg=300.0,
            fix="3d",
            sats=12,
            hdop=0.8,
            systems=["GPS", "BDS"],
        )
        self.publish([(topics.position(node), msg.model_dump_json().encode())])

    def lock_event(self, node: str, event: str) -> None:
        """Lock EL-1's report of `event`, signed as the lock signs it."""
        now = utc_now().replace(microsecond=0)
        signed = signed_lock_fields(LOCK_SECRETS["EL-1"], "EL-1", now, "sealed", event, 80)
        msg = LockReport.model_validate(
            {"node_id": node, "seq": self.next_seq(node), "ts": format_ts(now), **signed}
        )
        self.publish([(topics.lock(node), msg.model_dump_json().encode())])

    broker_port = 0


@pytest.fixture(scope="module")
def live_server(
    broker: MosquittoBroker, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    server = ServerProcess(tmp_path_factory.mktemp("live-server"), broker)
    server.broker_port = broker.port
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def tab(browser: Browser, live_server: ServerProcess) -> Iterator[Console]:
    if live_server.proc is None:  # a test before this one stopped it and failed meanwhile
        live_server.start()
    context = browser.new_context(
        viewport={"width": 1280, "height": 800}, locale="zh-CN", timezone_id="Asia/Shanghai"
    )
    page = context.new_page()
    page.set_default_timeout(15_000)
    console = Console(page, live_server.base_url, [], [])
    page.on("request", lambda request: console.requests.append(request.url))
    page.on("pageerror", lambda err: console.console_errors.append(str(err)))
    try:
        yield console
        assert console.foreign_requests() == [], "the console must not reach beyond its server"
        assert console.console_errors == []
    finally:
        context.close()


def open_page(tab: Console, path: str, role: str = "officer") -> Page:
    tab.login(ACCOUNTS[role])
    expect(tab.page.locator("#who")).not_to_be_empty()
    tab.goto(path)
    page = tab.page
    # The live source's banner (hidden while live) exists once the page is built and its
    # stream is open; the status line alone may say so earlier.
    expect(page.locator("#connection")).to_have_attribute("data-state", "live")
    expect(page.locator("#status")).to_have_attribute("data-state", "live")
    page.evaluate("window.__sameDocument = true")  # gone if the page ever reloads
    return page


def same_document(page: Page) -> bool:
    return bool(page.evaluate("window.__sameDocument === true"))


def requests_to(tab: Console, path: str) -> int:
    return sum(1 for url in tab.requests if f"/api/v1{path}" in url)


def test_truck_appears_and_moves_on_the_map_through_the_broker(
    tab: Console, live_server: ServerProcess
) -> None:
    page = open_page(tab, "/")
    expect(page.locator("#map[data-ready='1']")).to_be_attached()
    polled = requests_to(tab, "/vehicles/positions")
    truck = page.locator(".truck[data-vehicle='TRK-RT-1']")
    expect(truck).to_have_count(0)

    lon, lat = ROUTE[0]
    live_server.position("TRK-RT-1", lon, lat)
    expect(truck).to_have_attribute("data-status", "in_transit")
    expect(page.locator("#trucks tr[data-vehicle='TRK-RT-1'] .st")).to_have_text("行驶中")
    before = truck.bounding_box()
    assert before is not None
    tab.screenshot("realtime-map-appears")

    lon, lat = ROUTE[3]
    live_server.position("TRK-RT-1", lon, lat)
    page.wait_for_function(
        """([x, y]) => {
            const truck = document.querySelector(".truck[data-vehicle='TRK-RT-1']");
            const r = truck?.getBoundingClientRect();
            return r && Math.hypot(r.x - x, r.y - y) > 20;
        }""",
        arg=[before["x"], before["y"]],
    )
    after = truck.bounding_box()
    assert after is not None and after["x"] < before["x"] and after["y"] < before["y"]  # NW
    tab.screenshot("realtime-map-moved")
    # From the stream alone: the page neither reloaded nor polled the positions again.
    assert same_document(page)
    assert requests_to(tab, "/vehicles/positions") == polled


def test_alarm_raised_by_the_rules_arrives_flagged_then_the_server_escalates_it(
    tab: Console, live_server: ServerProcess
) -> None:
    live_server.open_trip("D-RT-2", "TRK-RT-2")
    lon, lat = ROUTE[1]
    live_server.position("TRK-RT-2", lon, lat)
    page = open_page(tab, "/alarms")
    expect(page.locator("#alarm-queue[data-loaded='1']")).to_be_attached()
    polled = requests_to(tab, "/alarms?")

    live_server.lock_event("TRK-RT-2", "rope_cut")  # the lock reports its rope cut
    row = page.locator("#alarm-queue tr[data-severity='critical']").filter(has_text="TRK-RT-2")
    expect(row).to_have_attribute("data-new", "1")
    expect(row.locator(".new-badge")).to_have_text("新")
    expect(row.locator(".status-cell")).to_have_text("未确认")
    expect(page.locator("body")).to_have_attribute("data-tones", "1")
    expect(row).to_have_attribute("data-escalated", "0")  # not yet: the delay is 4 s
    tab.screenshot("realtime-alarm-new")

    # The server escalates it (no browser clock involved) and the stream says so.
    expect(row).to_have_attribute("data-escalated", "1", timeout=20_000)
    expect(row.locator(".escalated-badge")).to_have_text("已升级")
    tab.screenshot("realtime-alarm-escalated")
    alarm_id = int(row.get_attribute("data-id") or 0)
    status, body = tab.api("GET", f"/api/v1/alarms/{alarm_id}")
    assert status == 200 and body["type"] == "LOCK_TAMPER" and body["escalated_at"]
    waited = datetime.fromisoformat(body["escalated_at"]) - datetime.fromisoformat(body["first_at"])
    assert timedelta(seconds=ESCALATE_AFTER_S) <= waited < timedelta(seconds=ESCALATE_AFTER_S + 10)
    assert [(h["actor"], h["action"]) for h in body["history"]] == [
        ("system", "raise"),
        ("system", "escalate"),
    ]
    row.click()
    expect(page.locator("#alarm-history tr[data-action='escalate']")).to_contain_text("系统")
    assert same_document(page)
    assert requests_to(tab, "/alarms?") == polled  # no polling: the stream brought both


def test_server_restart_page_recovers_and_shows_what_happened_meanwhile(
    tab: Console, browser: Browser, live_server: ServerProcess
) -> None:
    live_server.open_trip("D-RT-3", "TRK-RT-3")
    page = open_page(tab, "/alarms")
    expect(page.locator("#alarm-queue[data-loaded='1']")).to_be_attached()
    map_page = page.context.new_page()  # the map in a second tab of the same officer
    map_page.set_default_timeout(15_000)
    map_page.goto(live_server.base_url + "/")
    expect(map_page.locator("#status")).to_have_attribute("data-state", "live")
    map_page.evaluate("window.__sameDocument = true")
    banner = page.locator("#connection")

    live_server.kill()
    expect(banner).to_be_visible()
    expect(banner).to_have_attribute("data-state", "lost")
    expect(banner).to_contain_text("连接已中断")
    expect(page.locator("#status")).to_have_attribute("data-state", "down")
    expect(map_page.locator("#connection")).to_have_attribute("data-state", "lost")
    tab.screenshot("realtime-connection-lost")

    # Meanwhile: a rule's alarm committed by another worker, and a truck reporting (its
    # position waits in the broker for the server's persistent session).
    store = Store.open(live_server.url)
    raised = AlarmService(store.engine).raise_(
        "D-RT-3", "TRK-RT-3", "LOCK_OPENED", "critical", utc_now(), None, "opened on the road"
    )
    store.close()
    lon, lat = ROUTE[2]
    live_server.position("TRK-RT-3", lon, lat)
    time.sleep(1.0)  # the page keeps trying while the server is away
    expect(banner).to_be_visible()

    live_server.start()
    expect(banner).to_be_hidden(timeout=20_000)
    expect(page.locator("#status")).to_have_attribute("data-state", "live")
    row = page.locator(f"#alarm-queue tr[data-id='{raised.alarm_id}']")
    expect(row).to_have_attribute("data-new", "1")  # it is news to this officer
    expect(page.locator("body")).to_have_attribute("data-tones", "1")
    expect(map_page.locator("#connection")).to_be_hidden()
    # (its marker may stand in a cluster with the other tests' trucks: the list says it)
    expect(map_page.locator("#trucks tr[data-vehicle='TRK-RT-3'] .st")).to_have_text("报警")
    tab.screenshot("realtime-recovered")
    assert same_document(page) and bool(map_page.evaluate("window.__sameDocument === true"))
    map_page.close()


def test_session_ended_while_the_server_was_away_sends_to_the_login(
    tab: Console, live_server: ServerProcess
) -> None:
    page = open_page(tab, "/alarms")
    live_server.kill()
    expect(page.locator("#connection")).to_have_attribute("data-state", "lost")
    store = Store.open(live_server.url)  # an admin ends every session meanwhile
    with store.engine.begin() as conn:
        conn.execute(update(schema.auth_sessions).values(ended_at=utc_now()))
    store.close()
    live_server.start()
    expect(page).to_have_url(f"{live_server.base_url}/login?next=%2Falarms", timeout=20_000)
    page.fill("#username", ACCOUNTS["officer"])  # on the login page it was sent to
    page.fill("#password", PASSWORD)
    page.click("#submit")
    expect(page).to_have_url(f"{live_server.base_url}/alarms")  # and back
    expect(page.locator("#status")).to_have_attribute("data-state", "live")


def test_a_page_started_while_the_server_was_away_loads_again_and_goes_live(
    tab: Console, live_server: ServerProcess
) -> None:
    """The server goes away while the page is still being built (its filter lists cannot
    be read): the page says so, counts down, loads itself again and goes live."""
    refused: list[str] = []

    def away(route: Route) -> None:
        if not refused:
            refused.append(route.request.url)
            route.abort("connectionrefused")
        else:
            route.continue_()

    tab.login(ACCOUNTS["officer"])
    expect(tab.page.locator("#who")).not_to_be_empty()
    tab.page.route("**/api/v1/routes", away)
    tab.goto("/alarms")
    page = tab.page
    status = page.locator("#status")
    expect(status).to_have_attribute("data-state", "down")
    expect(status).to_contain_text("秒后重试")
    expect(page.locator("#connection")).to_have_count(0)  # the page never got that far
    expect(page.locator("#connection")).to_have_attribute("data-state", "live", timeout=10_000)
    expect(status).to_have_attribute("data-state", "live")
    assert len(refused) == 1
    # Built by a reload of the page, with the read that was refused the first time.
    assert page.evaluate("performance.getEntriesByType('navigation')[0].type") == "reload"
    assert page.locator("#alarm-filters select[name='route'] option").count() > 1  # routes
    assert page.evaluate("sessionStorage.getItem('bondwatch.start-tries')") is None


def test_without_the_stream_the_page_reads_the_api_and_says_so(
    tab: Console, live_server: ServerProcess
) -> None:
    """A proxy that refuses WebSocket upgrades: the page falls back to reading the REST API
    every poll_interval_ms, shows it, and takes the stream again once it can."""
    blocked = [True]

    def proxy(ws: WebSocketRoute) -> None:
        if blocked[0]:
            ws.close(code=1011, reason="no upgrades here")
        else:
            ws.connect_to_server()

    tab.page.route_web_socket("**/api/v1/stream*", proxy)
    tab.login(ACCOUNTS["officer"])
    expect(tab.page.locator("#who")).not_to_be_empty()
    tab.goto("/")
    page = tab.page
    page.evaluate("window.__sameDocument = true")
    banner = page.locator("#connection")
    expect(banner).to_have_attribute("data-state", "polling")
    expect(banner).to_contain_text("实时推送不可用")
    lon, lat = ROUTE[2]
    live_server.position("TRK-RT-5", lon, lat)
    expect(page.locator("#trucks tr[data-vehicle='TRK-RT-5'] .st")).to_have_text("行驶中")
    tab.screenshot("realtime-polling")

    blocked[0] = False
    expect(banner).to_be_hidden()
    expect(page.locator("#status")).to_have_attribute("data-state", "live")
    polled = requests_to(tab, "/vehicles/positions")
    live_server.position("TRK-RT-5", *ROUTE[3])
    expect(page.locator("#trucks tr[data-vehicle='TRK-RT-5']")).to_be_visible()
    page.wait_for_timeout(2000)
    assert requests_to(tab, "/vehicles/positions") == polled  # the stream again, no polling
    assert same_document(page)

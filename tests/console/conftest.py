"""Real-browser harness: the real server (uvicorn in a thread, SQLite in tmp, the demo
geography) and the distribution's headless Chromium driven by Playwright.

Never downloads a browser: Chromium must come from the distribution (`apt-get install
chromium chromium-driver`, done by `make console-assets` when root)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import uvicorn
from playwright.sync_api import Browser, Page, Playwright, sync_playwright

from contract.ids import format_ts
from contract.payloads import GateCommand, LockReport, Passage, Position, decode_edge
from server.alarms import AlarmService
from server.app import create_app, escalator_for
from server.auth.config import AuthSettings
from server.console.config import ConsoleSettings
from server.console.web import ASSETS_HINT, missing_assets
from server.gates.service import GateService
from server.services import Services
from server.store.database import IncomingMessage
from server.stream import position_event
from tests.lock_reports import signed_lock_fields
from tests.server.assembled import Recorder, assemble, server_config
from tests.server.auth.session import PASSWORD, add_account
from tests.server.gates.conftest import LOCK_SECRET, passage_fields

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "console"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--autoplay-policy=no-user-gesture-required",  # the alarm tone (Web Audio)
]
INSTALL_CHROMIUM = (
    "headless Chromium not found: install the distribution's browser with "
    "`sudo apt-get install chromium chromium-driver` (or run `make console-assets` as root); "
    "set BONDWATCH_CHROMIUM to use another path. Playwright must never download a browser."
)
#: The accounts every console test can use.
ACCOUNTS = {"officer": "officer.one", "supervisor": "supervisor.one", "admin": "it.admin"}
AUTH = AuthSettings(lockout_threshold=3, lockout_base_s=60, client_max_failures=50)
#: The locks the console server holds a secret for (`gates.lock_secrets_file`): the
#: reports `ConsoleServer.store_lock` signs with them are authenticated at its gates.
LOCK_SECRETS = {"EL-1": LOCK_SECRET}


def chromium_path() -> str | None:
    named = os.environ.get("BONDWATCH_CHROMIUM")
    for candidate in (named, "/usr/bin/chromium", shutil.which("chromium")):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


@dataclass
class ConsoleServer:
    base_url: str
    services: Services
    #: the commands the server's gate service signed and sent
    commands: Recorder
    seq: dict[str, int] = field(default_factory=dict)

    @property
    def gates(self) -> GateService:
        """The server's gate service (signing, as the real server's)."""
        return self.services.gates

    def store_positions(
        self, vehicle_id: str, points: list[tuple[float, float, float]], at: datetime
    ) -> None:
        """Store fixes (lon, lat, speed_kmh) through the store's ingest path, as MQTT would."""
        batch = []
        for lon, lat, speed in points:
            seq = self.seq.get(vehicle_id, 0) + 1
            self.seq[vehicle_id] = seq
            msg = Position(
                node_id=vehicle_id,
                seq=seq,
                ts=at,
                lat=lat,
                lon=lon,
                speed_kmh=speed,
                course_deg=300.0,
                fix="3d",
                sats=12,
                hdop=0.8,
                systems=["GPS", "BDS"],
            )
            batch.append(IncomingMessage("position", msg, msg.model_dump_json(), at))
        assert len(self.services.store.store_messages(batch)) == len(points)
        # …and on to the live stream, as the ingest hands every stored batch to the hub.
        newest = batch[-1].message
        assert isinstance(newest, Position)
        self.services.stream.publish("position", position_event(newest))

    def store_lock(self, vehicle_id: str, lock_id: str, event: str, at: datetime) -> None:
        """Store a sealed lock's report, signed as the lock signs it (`LOCK_SECRETS`; its
        time in whole seconds), through the store's ingest path."""
        seq = self.seq.get(vehicle_id, 0) + 1
        self.seq[vehicle_id] = seq
        at = at.replace(microsecond=0)
        signed = signed_lock_fields(LOCK_SECRETS[lock_id], lock_id, at, "sealed", event, 81)
        msg = LockReport.model_validate({"node_id": vehicle_id, "seq": seq, "ts": at, **signed})
        batch = [IncomingMessage("lock", msg, msg.model_dump_json(), at)]
        assert len(self.services.store.store_messages(batch)) == 1

    def pass_gate(
        self,
        gate_node: str,
        passage_id: str,
        at: datetime,
        readings: list[dict[str, Any]] | None = None,
        plate_reading: dict[str, Any] | None = None,
        **fields: Any,
    ) -> Passage:
        """A gate controller's passage through the real path: stored by the store's ingest,
        then handed to the `GateService` as the ingest does (decided, recorded, audited,
        its command sent, the live stream told). `fields` as `passage_fields` takes them;
        `readings` and `plate_reading` replace its readings (confidence, review flags)."""
        seq = self.seq.get(gate_node, 0) + 1
        self.seq[gate_node] = seq
        body: dict[str, Any] = {"node_id": gate_node, "seq": seq, "ts": format_ts(at)}
        body |= passage_fields(passage_id, **fields)
        if readings is not None:
            body["containers"] = readings
        if plate_reading is not None:
            body["plate"] = plate_reading
        raw = json.dumps(body)
        message = decode_edge("passage", raw)
        assert isinstance(message, Passage)
        fresh = self.services.store.store_messages([IncomingMessage("passage", message, raw, at)])
        assert len(fresh) == 1
        with ThreadPoolExecutor(1) as pool:  # the ingest's handler is a coroutine
            pool.submit(asyncio.run, self.gates.on_messages(fresh)).result(30)
        return message

    def gate_commands(self, passage_id: str) -> list[GateCommand]:
        """The signed gate commands sent for one passage, oldest first."""
        return [
            c for _, c in self.commands.sent
            if isinstance(c, GateCommand) and c.passage_id == passage_id
        ]  # fmt: skip

    @property
    def alarms(self) -> AlarmService:
        """The server's alarm service (as the judge raises alarms): its changes reach the
        live stream."""
        assert self.services.alarms is not None
        return self.services.alarms


@contextmanager
def running_console_server(
    folder: Path, settings: ConsoleSettings, accounts: dict[str, str] = ACCOUNTS
) -> Iterator[ConsoleServer]:
    """The real app on a free port (uvicorn in a thread): SQLite in `folder`, the demo
    geography, the given accounts, the lock secrets of `LOCK_SECRETS`, a `GateService`
    that signs its commands (into `ConsoleServer.commands`) and tells the live stream of
    every passage, and the server's escalation task."""
    missing = missing_assets(settings)
    if missing:
        pytest.fail(f"{ASSETS_HINT}; missing: {', '.join(map(str, missing))}")
    services, commands = assemble(server_config(folder, LOCK_SECRETS))
    for role, username in accounts.items():
        add_account(services, username, role)  # type: ignore[arg-type]
    app = create_app(services, auth=AUTH, console=settings)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, name="console-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("the console server did not start")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    # The server's escalation task (server.alarms.escalation), as `serve` runs it.
    assert services.alarms is not None
    escalator = escalator_for(services.alarms, settings)
    stop = threading.Event()

    def escalate() -> None:
        while not stop.wait(settings.escalation_check_s):
            escalator.run_once()

    escalation = threading.Thread(target=escalate, name="escalation", daemon=True)
    escalation.start()
    try:
        yield ConsoleServer(f"http://127.0.0.1:{port}", services, commands)
    finally:
        stop.set()
        escalation.join(10)
        server.should_exit = True
        thread.join(10)
        services.store.close()


@pytest.fixture(scope="package")
def console_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleServer]:
    folder = tmp_path_factory.mktemp("console-server")
    settings = ConsoleSettings(poll_interval_ms=500, escalation_check_s=0.5)
    with running_console_server(folder, settings) as server:
        yield server


@pytest.fixture(scope="package")
def playwright_driver() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="package")
def browser(playwright_driver: Playwright) -> Iterator[Browser]:
    path = chromium_path()
    if path is None:
        pytest.fail(INSTALL_CHROMIUM)
    launched = playwright_driver.chromium.launch(
        executable_path=path, headless=True, args=CHROMIUM_ARGS
    )
    try:
        yield launched
    finally:
        launched.close()


@dataclass
class Console:
    """A browser tab on the console, which records every request the page makes."""

    page: Page
    base_url: str
    requests: list[str]
    console_errors: list[str]
    #: Origins besides its server the page may reach (a configured tile server).
    allowed: set[str] = field(default_factory=set)

    def goto(self, path: str) -> None:
        self.page.goto(self.base_url + path)

    def login(self, username: str, password: str = PASSWORD) -> None:
        self.goto("/login")
        self.page.fill("#username", username)
        self.page.fill("#password", password)
        self.page.click("#submit")

    def screenshot(self, name: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        self.page.screenshot(path=str(path))
        return path

    def api(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        """A fetch from inside the page (its cookie, and only the headers given)."""
        result = self.page.evaluate(
            """async ([method, path, body, headers]) => {
                const res = await fetch(path, {
                    method,
                    headers: {"Content-Type": "application/json", ...headers},
                    body: body === null ? undefined : JSON.stringify(body),
                });
                return [res.status, await res.text()];
            }""",
            [method, path, body, headers or {}],
        )
        status, text = result
        return status, (json.loads(text) if text else None)

    def foreign_requests(self) -> list[str]:
        origins = {urlsplit(self.base_url).netloc} | self.allowed
        return [
            u
            for u in self.requests
            if not u.startswith(("data:", "blob:")) and urlsplit(u).netloc not in origins
        ]


@contextmanager
def console_tab(
    browser: Browser, base_url: str, allowed: set[str] | None = None
) -> Iterator[Console]:
    """A new browser context (zh-CN, Shanghai) on `base_url`; on leaving, the page must
    have made no request beyond its server (and the `allowed` origins)."""
    context = browser.new_context(
        viewport={"width": 1280, "height": 800}, locale="zh-CN", timezone_id="Asia/Shanghai"
    )
    page = context.new_page()
    page.set_default_timeout(10_000)
    tab = Console(page, base_url, [], [], set(allowed or ()))
    page.on("request", lambda request: tab.requests.append(request.url))
    page.on("console", lambda m: tab.console_errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda err: tab.console_errors.append(str(err)))
    try:
        yield tab
        assert tab.foreign_requests() == [], "the console must not reach beyond its server"
    finally:
        context.close()


@pytest.fixture
def console(browser: Browser, console_server: ConsoleServer) -> Iterator[Console]:
    with console_tab(browser, console_server.base_url) as tab:
        yield tab

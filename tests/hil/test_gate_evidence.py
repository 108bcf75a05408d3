"""Gate evidence with everything real: Mosquitto, the server, the barrier and camera stubs,
the gate agent with real OCR, and headless Chromium.

The gate G-BAIYUN-1 (of the demo geography) reads a rendered container door; its agent
uploads the frame and the crops it read with its own `device` token from its upload
queue; an officer sees them on the console's lane view with the text boxes drawn and
the readings' confidences, and a click opens the full frame. Then the server is stopped,
a second truck is read, the agent is killed (SIGKILL) with the images still queued, and
both come back: the images reach the server all the same.
"""

from __future__ import annotations

import contextlib
import io
import json
import socket
import sqlite3
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from PIL import Image
from playwright.sync_api import Browser, expect, sync_playwright

from contract.ids import utc_now
from contract.signing import generate_private_key, private_key_to_pem, public_key_to_pem
from devtools.broker import MosquittoBroker, free_port
from devtools.processes import Child
from server.auth.accounts import AccountStore
from server.auth.config import AuthSettings
from server.store import Store
from tests.console.conftest import CHROMIUM_ARGS, INSTALL_CHROMIUM, chromium_path, console_tab
from tests.hil.test_gate import SCENE_SETTLE_S, _start_camera
from tests.server.conftest import DEMO

pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]

GATE = "G-BAIYUN-1"
OFFICER, PASSWORD = "officer.ev", "evidence officer pw 1"
FIRST, SECOND = "CSQU3054383", "MSKU6011672"


@dataclass
class Bench:
    root: Path
    logs: Path
    broker: MosquittoBroker
    base: str
    server_cfg: Path
    agent_cfg: Path
    queue: Path
    control: tuple[str, int]
    camera_base: str
    children: dict[str, Child]

    def start_server(self) -> None:
        child = Child.python(
            "server", ["-m", "server", "--config", str(self.server_cfg)], self.logs
        )
        self.children["server"] = child.start()
        wait_until(lambda: _healthy(self.base), 60, "server answers", child)

    def start_agent(self) -> None:
        args = ["-m", "edge", "gate", "--config", str(self.agent_cfg)]
        self.children["agent"] = Child.python("gate-agent", args, self.logs).start()

    def agent_log(self) -> str:
        return self.children["agent"].log_path.read_text(errors="replace")

    def arrive(self, number: str) -> None:
        url = f"{self.camera_base}/trigger?number={number}"
        with urllib.request.urlopen(url, timeout=30) as shown:
            assert number in shown.read().decode()
        time.sleep(SCENE_SETTLE_S)
        self.barrier("arrive")

    def barrier(self, line: str) -> None:
        with socket.create_connection(self.control, timeout=5) as conn:
            conn.sendall(line.encode() + b"\n")
            answer = conn.makefile().readline()
        assert answer.startswith("OK "), answer

    def queued(self) -> int:
        with contextlib.closing(sqlite3.connect(self.queue)) as db:
            return int(db.execute("SELECT COUNT(*) FROM uploads").fetchone()[0])


def _healthy(base: str) -> bool:
    try:
        return httpx.get(f"{base}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def wait_until(
    what: Callable[[], Any], timeout: float, said: str, child: Child | None = None
) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = what()
        if found:
            return found
        if child is not None:
            assert child.running, child.log_path.read_text()[-3000:]
        time.sleep(0.3)
    raise AssertionError(f"never {said}")


def _accounts(database: str, token_file: Path) -> None:
    """An officer, and the gate's `device` account (named after its node id) with a token."""
    store = Store.open(database)
    try:
        accounts = AccountStore(store.engine, AuthSettings())
        now = utc_now()
        accounts.create("test", OFFICER, "Evidence Officer", "officer", PASSWORD, now)
        accounts.create("test", GATE, "白云卡口 1", "device", None, now)
        token, _ = accounts.issue_token("test", GATE, "evidence upload", None, now)
        token_file.write_text(token + "\n", encoding="utf-8")
        token_file.chmod(0o600)
    finally:
        store.close()


@contextlib.contextmanager
def evidence_bench(root: Path) -> Iterator[Bench]:
    logs = root / "logs"
    logs.mkdir()
    broker = MosquittoBroker(root / "mosquitto")
    broker.start()
    children: dict[str, Child] = {}
    camera: subprocess.Popen[bytes] | None = None
    try:
        key = generate_private_key()
        (root / "server.pem").write_bytes(private_key_to_pem(key))
        (root / "server.pub").write_bytes(public_key_to_pem(key.public_key()))
        database = f"sqlite:///{root / 'server.db'}"
        _accounts(database, root / "gate-token")
        port = free_port()
        server_cfg = root / "server.yaml"
        server_cfg.write_text(yaml.safe_dump({
            "broker": {"host": broker.host, "port": broker.port, "client_id": "bw-server-ev"},
            "http": {"host": "127.0.0.1", "port": port},
            "storage": {"url": database},
            "geography": {"routes": sorted(str(p) for p in (DEMO / "routes").glob("*.geojson")),
                          "zones": [str(DEMO / "zones.geojson")]},
            "signing_key_file": str(root / "server.pem"),
            "evidence": {"storage": {"type": "folder", "path": str(root / "evidence")}},
        }))  # fmt: skip
        barrier = Child.python(
            "barrier", ["-m", "firmware_stubs.barrier", "--travel-s", "0.6"], logs
        ).start(ready="CONTROL")
        children["barrier"] = barrier
        host, cport = barrier.lines[-1].split()[1].split(":")
        camera, url = _start_camera(logs)
        agent_cfg = root / "gate.yaml"
        agent_cfg.write_text(yaml.safe_dump({
            "node_id": GATE,
            "broker": {"host": broker.host, "port": broker.port},
            "outbox": {"path": "state/outbox.sqlite3", "nonce_path": "state/nonces.sqlite3"},
            "server_public_key": "server.pub",
            "lane": "L1",
            "direction": "in",
            "decision_timeout_s": 5,
            "barrier": {"type": "modbus_rtu", "port": barrier.lines[0], "unit_id": 1,
                        "presence_debounce_s": 0.2},
            "cameras": [{"type": "opencv", "name": "rear", "url": url, "frames_after": 3}],
            "images_dir": "images",
            "evidence": {"server_url": f"http://127.0.0.1:{port}", "token_file": "gate-token",
                         "queue_path": "state/uploads.sqlite3", "retry_min_s": 0.5,
                         "retry_max_s": 2},
        }))  # fmt: skip
        bench = Bench(root, logs, broker, f"http://127.0.0.1:{port}", server_cfg, agent_cfg,
                      root / "state" / "uploads.sqlite3", (host, int(cport)),
                      url.rsplit("/", 1)[0], children)  # fmt: skip
        bench.start_server()
        bench.start_agent()
        wait_until(lambda: "OCR ready" in bench.agent_log(), 120, "OCR ready", children["agent"])
        yield bench
    finally:
        for child in reversed(list(children.values())):
            child.stop()
        if camera is not None:
            with contextlib.suppress(OSError):
                assert camera.stdin is not None
                camera.stdin.write(b"quit\n")
                camera.stdin.close()
            try:
                camera.wait(timeout=5)
            except subprocess.TimeoutExpired:
                camera.kill()
                camera.wait()
        broker.stop()


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bench]:
    with evidence_bench(tmp_path_factory.mktemp("evidence")) as made:
        yield made


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    path = chromium_path()
    if path is None:
        pytest.fail(INSTALL_CHROMIUM)
    with sync_playwright() as driver:
        launched = driver.chromium.launch(executable_path=path, headless=True, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


def officer_client(bench: Bench) -> httpx.Client:
    client = httpx.Client(base_url=bench.base, timeout=10)
    res = client.post("/api/v1/auth/login", json={"username": OFFICER, "password": PASSWORD})
    assert res.status_code == 200, res.text
    return client


def passage_with_images(client: httpx.Client, number: str) -> dict[str, Any] | None:
    """The newest passage that read `number`, once its frame and a crop have arrived."""
    for p in client.get("/api/v1/passages", params={"gate": GATE}).json():
        if any(c["number"] == number for c in p["containers"]):
            kinds = {e["kind"] for e in p["evidence"]}
            return p if {"frame", "crop"} <= kinds else None
    return None


def test_the_passage_images_reach_the_lane_view(bench: Bench, browser: Browser) -> None:
    bench.arrive(FIRST)
    officer = officer_client(bench)
    passage = wait_until(lambda: passage_with_images(officer, FIRST), 120,
                         f"images of the passage of {FIRST}", bench.children["agent"])  # fmt: skip
    frame = next(e for e in passage["evidence"] if e["kind"] == "frame")
    crop = next(e for e in passage["evidence"] if e["kind"] == "crop")
    read = next(t for t in frame["texts"] if t["text"] == FIRST)
    assert read["kind"] == "container" and 0.5 < read["confidence"] <= 1
    x0, y0, x1, y1 = read["box"]
    assert 0 <= x0 < x1 <= 960 and 0 <= y0 < y1 <= 540
    assert (frame["camera"], frame["width"], frame["height"]) == ("rear", 960, 540)
    assert crop["frame"] == frame["n"] and crop["texts"][0]["text"] == FIRST
    assert crop["width"] < 960 and crop["height"] < 540
    # The images follow the decision within seconds (the uploader runs beside the lane).
    decided = datetime.fromisoformat(passage["decided_at"])
    late = max(datetime.fromisoformat(e["uploaded_at"]) for e in passage["evidence"]) - decided
    print(f"images stored {late.total_seconds():.2f} s after the decision; "
          f"frame {frame['size']} bytes, crop {crop['size']} bytes")  # fmt: skip
    assert late.total_seconds() < 10
    jpeg = officer.get(frame["url"])
    assert jpeg.status_code == 200 and jpeg.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(jpeg.content)).size == (960, 540)
    # The gate keeps its own references; the server's are beside them.
    assert passage["images"][0].startswith(f"gate://{GATE}/")
    # No session, no image.
    assert httpx.get(bench.base + frame["url"]).status_code == 401
    assert (
        httpx.get(f"{bench.base}/api/v1/passages/{passage['passage_id']}/images").status_code == 401
    )

    with console_tab(browser, bench.base) as tab:
        tab.login(OFFICER, PASSWORD)
        tab.page.wait_for_url("**/")
        tab.goto("/gates")
        card = tab.page.locator(f'article.lane[data-passage="{passage["passage_id"]}"]')
        thumb = card.locator(f'figure.evidence-thumb.frame[data-n="{frame["n"]}"]')
        expect(thumb).to_be_visible()
        box = thumb.locator(f'g.evidence-box[data-text="{FIRST}"]')
        expect(box.locator("rect")).to_have_count(1)
        expect(box.locator("text")).to_contain_text(f"{round(read['confidence'] * 100)}%")
        expect(card.locator("figure.evidence-thumb.crop")).not_to_have_count(0)
        loaded = thumb.locator("img").evaluate("img => img.complete && img.naturalWidth")
        assert loaded == 960
        tab.screenshot("gates-evidence")
        thumb.click()
        dialog = tab.page.locator("dialog.evidence-dialog")
        expect(dialog).to_be_visible()
        full = dialog.locator(".evidence-full img")
        expect(full).to_have_attribute("src", frame["url"])
        wait_until(lambda: full.evaluate("img => img.complete && img.naturalWidth") == 960, 10,
                   "the full frame shown")  # fmt: skip
        expect(dialog.locator("g.evidence-box rect")).not_to_have_count(0)
        tab.screenshot("gates-evidence-frame")
        dialog.locator("button.evidence-close").click()
        expect(dialog).to_have_count(0)
        assert tab.console_errors == []
    bench.barrier("leave")


def test_queued_images_survive_a_server_outage_and_a_killed_agent(bench: Bench) -> None:
    bench.children["server"].stop()
    mark = len(bench.agent_log())
    bench.arrive(SECOND)
    # The passage waits in the outbox, the images in the upload queue.
    wait_until(lambda: "cannot take uploads" in bench.agent_log()[mark:], 120,
               "the agent finds the server away", bench.children["agent"])  # fmt: skip
    queued = bench.queued()
    assert queued >= 2
    bench.barrier("leave")
    time.sleep(1.0)
    bench.children["agent"].kill()  # SIGKILL: nothing is flushed on the way out
    assert bench.queued() == queued
    bench.start_agent()
    time.sleep(3.0)  # the agent retries into the void meanwhile
    assert bench.queued() == queued
    bench.start_server()
    officer = officer_client(bench)
    passage = wait_until(lambda: passage_with_images(officer, SECOND), 120,
                         f"images of the passage of {SECOND}", bench.children["agent"])  # fmt: skip
    wait_until(lambda: bench.queued() == 0, 60, "the upload queue empty")
    assert len(passage["evidence"]) >= 2
    stored = officer.get(f"/api/v1/passages/{passage['passage_id']}/images").json()
    assert {i["kind"] for i in stored} == {"frame", "crop"}
    assert json.dumps(stored).count(SECOND) >= 2

"""Console scale benchmark: the live map and the alarm queue in headless Chromium, with
2,000 trucks reporting every 5 s and 10,000 alarms in the store (issue 8, part 10).

One run: a Mosquitto broker (production settings), the real server process
(`python -m server --config …`, SQLite in a temp dir, the demo geography), a store
seeded with `N_ALARMS` active alarms on the trucks, and a publisher process in which
`N_TRUCKS` trucks each publish a position every `REPORT_EVERY_S` seconds (QoS 1, their
phases spread evenly: `N_TRUCKS / REPORT_EVERY_S` messages a second) through the broker.
Everything goes the production way: broker → ingest → store → `WS /api/v1/stream` → page.
The browser is the distribution's Chromium driven by Playwright.

Measured in the page (`window.bondwatchPerf`, written by static/datasource.js, and a
PerformanceObserver for long tasks):

- `console.first_render_ms` — the map page opened while the trucks report: navigation
  start → every truck drawn (the first state applied and a frame painted);
  `console.first_render_idle_ms` the same once the trucks have stopped (the baseline: what
  the page costs on a server with nothing else to do).
- `console.update_ms_p50`, `console.update_ms_p95` — the map page's handler of one batch
  of stream changes (one per animation frame): markers moved, clusters updated, list rows.
- `console.long_task_ms_per_s` — main-thread time in tasks over 50 ms, per second.
- `console.stream_msgs_per_s` — messages the map page received (the load reached it);
  `console.publish_per_s` what the trucks published in the same time.
- `console.stream_reconnects` — streams the map page lost (a slow page is dropped: 0).
- `console.queue_first_render_ms` — the alarm queue (10,000 active alarms): navigation →
  first rows shown; `console.queue_loaded_ms` → all of them in the page's model.
- `console.queue_update_ms_p95` — the queue's handler of one batch of alarm changes, while
  officers acknowledge `ACKS_PER_S` alarms a second over the REST API.
- `console.queue_dom_rows` — table rows in the page after scrolling to the middle of the
  queue (only the rows in view are rendered).

The trucks have no declared trips: the rules are not run on their positions (the ingest
path with the rules is `bench_server`'s subject). Broker, server, publishers and the
browser share the machine's cores, as on an officer's one-box demo.
"""

from __future__ import annotations

import json
import logging
import math
import multiprocessing
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import yaml

from contract import topics
from contract.ids import format_ts, utc_now
from devtools.broker import MosquittoBroker, free_port
from server.alarms import AlarmService
from server.audit import write_transaction
from server.auth.accounts import AccountStore
from server.auth.config import AuthSettings
from server.store import Store

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "config" / "demo"
SHOTS = ROOT / "test-artifacts" / "bench"  # screenshots of the pages under load
N_TRUCKS = 2000
REPORT_EVERY_S = 5.0
N_ALARMS = 10_000
WARMUP_S = 12.0  # every truck has reported at least twice before the page opens
MAP_WINDOW_S = 30.0
QUEUE_WINDOW_S = 25.0
ACKS_PER_S = 8.0
#: Around the demo routes (Guangzhou: Huangpu, Nansha, Baiyun airport).
LON_RANGE = (113.25, 113.65)
LAT_RANGE = (22.75, 23.35)
USER, PASSWORD = "bench.officer", "bench officer password"
ALARM_TYPES = [
    ("ROUTE_DEVIATION", "major"),
    ("LOCK_TAMPER", "critical"),
    ("UNPLANNED_STOP", "minor"),
    ("LOCK_LOW_BATTERY", "warning"),
    ("GNSS_LOST", "minor"),
]
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]
LONG_TASKS = """
window.__longTasks = [];
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) window.__longTasks.push([e.startTime, e.duration]);
}).observe({ type: "longtask", buffered: true });
"""


def _chromium() -> str:
    for candidate in (os.environ.get("BONDWATCH_CHROMIUM"), "/usr/bin/chromium"):
        if candidate and Path(candidate).is_file():
            return candidate
    found = shutil.which("chromium")
    if found:
        return found
    raise RuntimeError("headless Chromium not found: apt-get install chromium")


# ---- the trucks (a process of their own) ----------------------------------------------


def _truck_track(i: int) -> tuple[float, float, float, float]:
    """Centre (lon, lat), radius (deg) and phase of truck i's circular round."""
    rnd = random.Random(i)
    lon = rnd.uniform(*LON_RANGE)
    lat = rnd.uniform(*LAT_RANGE)
    return lon, lat, rnd.uniform(0.01, 0.03), rnd.uniform(0, 2 * math.pi)


def _publish_trucks(host: str, port: int, seconds: float, sent: Any) -> None:
    """Every truck reports every REPORT_EVERY_S, phases spread evenly; QoS 1. `sent`
    (a shared counter) counts the positions handed to the client."""
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-console-trucks")
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.connect(host, port)
    client.loop_start()
    tracks = [_truck_track(i) for i in range(N_TRUCKS)]
    seqs = [0] * N_TRUCKS
    started = time.monotonic()
    step = REPORT_EVERY_S / N_TRUCKS
    due = 0  # index of the next message overall; truck = due % N_TRUCKS
    while True:
        now = time.monotonic() - started
        if now >= seconds:
            break
        while due * step <= now:
            i = due % N_TRUCKS
            lon0, lat0, radius, phase = tracks[i]
            angle = phase + (due * step) * 0.0015  # ≈ 60 km/h on the round
            seqs[i] += 1
            node = f"TRK-{i:04d}"
            body = {
                "node_id": node,
                "seq": seqs[i],
                "ts": format_ts(utc_now()),
                "lat": round(lat0 + radius * math.sin(angle), 7),
                "lon": round(lon0 + radius * math.cos(angle), 7),
                "speed_kmh": 58.0,
                "course_deg": 90.0,
                "fix": "3d",
                "sats": 12,
                "hdop": 0.9,
                "systems": ["GPS", "BDS"],
            }
            client.publish(topics.position(node), json.dumps(body), qos=1)
            due += 1
        sent.value = due
        time.sleep(0.02)
    client.loop_stop()
    client.disconnect()


# ---- the store and the server ---------------------------------------------------------


def _seed(url: str) -> None:
    """The officer's account and N_ALARMS active alarms on the trucks (one transaction)."""
    store = Store.open(url)
    try:
        AccountStore(store.engine, AuthSettings()).create(
            "bench", USER, "Bench Officer", "officer", PASSWORD, utc_now()
        )
        alarms = AlarmService(store.engine)
        now = utc_now()
        rnd = random.Random(8)
        with write_transaction(store.engine) as conn:
            for n in range(N_ALARMS):
                truck = n % N_TRUCKS
                kind, severity = ALARM_TYPES[(n // N_TRUCKS) % len(ALARM_TYPES)]
                lon, lat, _, _ = _truck_track(truck)
                alarms.raise_in_transaction(
                    conn,
                    f"BENCH-T-{truck:04d}",
                    f"TRK-{truck:04d}",
                    kind,
                    severity,
                    now - timedelta(seconds=rnd.uniform(10, 3600)),
                    (lon, lat),
                    "seeded by bench_console",
                )
    finally:
        store.close()


class _Server:
    def __init__(self, work: Path, broker: MosquittoBroker) -> None:
        self.port = free_port()
        self.url = f"sqlite:///{work / 'store.db'}"
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = work / "server.log"
        self.config = work / "server.yaml"
        config = {
            "broker": {"host": broker.host, "port": broker.port, "client_id": "bench-console"},
            "http": {"host": "127.0.0.1", "port": self.port},
            "storage": {"url": self.url},
            "geography": {
                "routes": [str(p) for p in sorted((DEMO / "routes").glob("*.geojson"))],
                "zones": [str(DEMO / "zones.geojson")],
            },
            # the seeded alarms are older than any delay: escalation is not measured here
            "console": {"escalate_after_min": 1440},
        }
        self.config.write_text(yaml.safe_dump(config), encoding="utf-8")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "server", "--config", str(self.config)],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        while b"listening on" not in self.log.read_bytes():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server did not start: {self.log.read_text()[-2000:]}")
            time.sleep(0.1)
        time.sleep(1.0)  # the ingest subscribes

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
            self.proc = None


def _ack_alarms(base: str, stop: threading.Event, done: list[int]) -> None:
    """Officers at work: acknowledge ACKS_PER_S alarms a second (each a stream change)."""
    with httpx.Client(base_url=base, timeout=10) as http:
        res = http.post("/api/v1/auth/login", json={"username": USER, "password": PASSWORD})
        res.raise_for_status()
        http.headers["X-CSRF-Token"] = res.json()["csrf_token"]
        ids = list(range(1, N_ALARMS + 1))
        random.Random(3).shuffle(ids)
        for alarm_id in ids:
            if stop.wait(1 / ACKS_PER_S):
                return
            res = http.post(f"/api/v1/alarms/{alarm_id}/ack", json={"comment": "bench: seen"})
            if res.status_code == 200:
                done.append(alarm_id)


# ---- the browser ----------------------------------------------------------------------


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def _wait_mark(page: Any, name: str, timeout_s: float = 120.0) -> float:
    page.wait_for_function(
        "(name) => window.bondwatchPerf?.marks?.[name] !== undefined",
        arg=name,
        timeout=timeout_s * 1000,
    )
    return float(page.evaluate("(name) => window.bondwatchPerf.marks[name]", name))


def _perf(page: Any) -> dict[str, Any]:
    return dict(page.evaluate("({...window.bondwatchPerf, longTasks: window.__longTasks})"))


def _measure(server: _Server, sent: Any, stop_trucks: Any) -> dict[str, float]:
    from playwright.sync_api import sync_playwright

    out: dict[str, float] = {}
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as driver:
        browser = driver.chromium.launch(
            executable_path=_chromium(), headless=True, args=CHROMIUM_ARGS
        )
        context = browser.new_context(viewport={"width": 1600, "height": 900})
        context.add_init_script(LONG_TASKS)
        res = context.request.post(
            server.base + "/api/v1/auth/login", data={"username": USER, "password": PASSWORD}
        )
        if not res.ok:
            raise RuntimeError(f"login failed: {res.status} {res.text()}")

        # -- the live map ------------------------------------------------------------
        page = context.new_page()
        page.goto(server.base + "/")
        out["first_render"] = _wait_mark(page, "map.first_render")
        marks = _perf(page)["marks"]
        print("  map page marks (ms):", {k: round(v) for k, v in marks.items()}, flush=True)
        trucks = int(page.evaluate("document.getElementById('truck-count').textContent"))
        before = _perf(page)
        t0, sent0 = time.monotonic(), sent.value
        page.wait_for_timeout(MAP_WINDOW_S * 1000)
        wall, published = time.monotonic() - t0, sent.value - sent0
        after = _perf(page)
        updates = after["samples"].get("map.update", [])[
            len(before["samples"].get("map.update", [])) :
        ]
        messages = after["counts"].get("stream.messages", 0) - before["counts"].get(
            "stream.messages", 0
        )
        start_ms = after["marks"]["map.first_render"]
        long_ms = sum(d for s, d in after["longTasks"] if s >= start_ms)
        since_render = page.evaluate("performance.now()") - start_ms
        out |= {
            "trucks": trucks,
            "update_p50": _percentile(updates, 0.5),
            "update_p95": _percentile(updates, 0.95),
            "updates": len(updates),
            "msgs_per_s": messages / wall,
            "publish_per_s": published / wall,
            "long_ms_per_s": long_ms / (since_render / 1000),
            "reconnects": after["counts"].get("stream.closed", 0),
        }
        page.screenshot(path=str(SHOTS / "console-map-2000.png"))
        page.close()

        # -- the alarm queue ---------------------------------------------------------
        page = context.new_page()
        page.goto(server.base + "/alarms")
        out["queue_first_render"] = _wait_mark(page, "queue.first_render")
        out["queue_loaded"] = _wait_mark(page, "queue.loaded")
        stop = threading.Event()
        acked: list[int] = []
        worker = threading.Thread(target=_ack_alarms, args=(server.base, stop, acked))
        worker.start()
        page.wait_for_timeout(QUEUE_WINDOW_S * 1000)
        stop.set()
        worker.join(30)
        page.wait_for_timeout(1000)
        perf = _perf(page)
        queue_updates = perf["samples"].get("queue.update", [])
        out["queue_update_p95"] = _percentile(queue_updates, 0.95)
        out["queue_updates"] = len(queue_updates)
        out["acks"] = len(acked)
        out["queue_count"] = int(
            page.evaluate("document.getElementById('alarm-count').textContent")
        )
        page.evaluate(
            "(() => { const s = document.querySelector('main.split > section.list');"
            " s.scrollTop = s.scrollHeight / 2; })()"
        )
        page.wait_for_timeout(300)
        out["queue_dom_rows"] = int(
            page.evaluate("document.querySelectorAll('#alarm-queue tbody tr:not(.vspacer)').length")
        )
        page.screenshot(path=str(SHOTS / "console-queue-10000.png"))
        page.close()

        # -- the map again, the trucks silent: what the reporting load costs ----------
        stop_trucks()
        time.sleep(2)
        page = context.new_page()
        page.goto(server.base + "/")
        out["first_render_idle"] = _wait_mark(page, "map.first_render")
        browser.close()
    return out


def run() -> dict[str, dict[str, Any]]:
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-console-") as tmp:
        work = Path(tmp)
        with MosquittoBroker(work / "broker") as broker:
            server = _Server(work, broker)
            _seed(server.url)
            print(f"  seeded {N_ALARMS} alarms in {time.monotonic() - started:.1f}s", flush=True)
            server.start()
            ctx = multiprocessing.get_context("spawn")
            sent = ctx.Value("q", 0)
            total_s = WARMUP_S + MAP_WINDOW_S + QUEUE_WINDOW_S + 120  # ends with the browser
            trucks = ctx.Process(
                target=_publish_trucks, args=(broker.host, broker.port, total_s, sent)
            )
            trucks.start()
            try:
                time.sleep(WARMUP_S)
                t0 = time.monotonic()
                measured = _measure(server, sent, trucks.terminate)
                elapsed = time.monotonic() - t0
            finally:
                trucks.terminate()
                trucks.join(10)
                server.stop()
    publish_rate = N_TRUCKS / REPORT_EVERY_S  # what 2,000 trucks every 5 s make
    print(
        f"  map: {measured['trucks']} trucks, {measured['updates']} updates, "
        f"{measured['msgs_per_s']:.0f} msg/s; queue: {measured['queue_count']} alarms, "
        f"{measured['acks']} acks, {measured['queue_updates']} updates "
        f"({elapsed:.0f}s in the browser)",
        flush=True,
    )

    def metric(value: float, unit: str, target: float | None, better: str) -> dict[str, Any]:
        return {"value": float(value), "unit": unit, "target": target, "better": better}

    return {
        "console.first_render_ms": metric(measured["first_render"], "ms", 3000.0, "lower"),
        "console.first_render_idle_ms": metric(measured["first_render_idle"], "ms", None, "lower"),
        "console.update_ms_p50": metric(measured["update_p50"], "ms", None, "lower"),
        "console.update_ms_p95": metric(measured["update_p95"], "ms", 16.0, "lower"),
        "console.long_task_ms_per_s": metric(measured["long_ms_per_s"], "ms/s", 100.0, "lower"),
        "console.stream_msgs_per_s": metric(
            measured["msgs_per_s"], "1/s", 0.9 * publish_rate, "higher"
        ),
        "console.publish_per_s": metric(
            measured["publish_per_s"], "1/s", 0.95 * publish_rate, "higher"
        ),
        "console.stream_reconnects": metric(measured["reconnects"], "count", 0.0, "lower"),
        "console.queue_first_render_ms": metric(
            measured["queue_first_render"], "ms", 2000.0, "lower"
        ),
        "console.queue_loaded_ms": metric(measured["queue_loaded"], "ms", None, "lower"),
        "console.queue_update_ms_p95": metric(measured["queue_update_p95"], "ms", 16.0, "lower"),
        "console.queue_dom_rows": metric(measured["queue_dom_rows"], "count", 200.0, "lower"),
    }


if __name__ == "__main__":
    for name, m in run().items():
        print(f"{name:34s} {m['value']:12.2f} {m['unit']}")

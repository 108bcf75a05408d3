"""Server ingest benchmark: positions through a real Mosquitto into the whole ingest path.

One run, one broker (`server.demo.broker.MosquittoBroker`), one SQLite store in a temp
dir, a `Judge` over a Geography of 10,000 routes and 10,000 zones, `N_VEHICLES` trucks
in transit (each on its own route), the trip tracker and the live-stream hub:

- `server.broker_drain_per_s` — the baseline: a bare aiomqtt client (QoS 1) receives
  `N_MESSAGES` positions that `N_PUBLISHERS` publisher clients (in a separate process,
  as trucks are) publish as fast as they can; timed from the first message to the last.
- `server.ingest_positions_per_s` — the same positions, published the same way, taken
  by `server.ingest.Ingest`: validated, stored (exactly once), trips updated, judged by
  the rules, offered to the stream; timed from the first message until the last batch
  has left every handler.
- `server.gate_decision_ms_p99` — reported only when a gate decision path exists.

The publishers share the 2 cores with the broker and the server, as in a one-box
deployment under load; the baseline shows what the broker and publishers allow.
"""

from __future__ import annotations

import asyncio
import json
import logging
import multiprocessing
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiomqtt
import numpy as np

from bench.bench_geo import _routes, _zones
from contract import topics
from contract.broker import BrokerSettings
from contract.mqtt_client import make_client
from server.alarms import AlarmService
from server.alarms.effects import AlarmEffects
from server.config import IngestSettings
from server.demo.broker import MosquittoBroker
from server.geo import Geography, Route
from server.ingest import Ingest
from server.judge import Judge
from server.metrics import Metrics
from server.rules.profiles import DEFAULT_PROFILES
from server.store import Store
from server.store.database import IncomingMessage
from server.stream import Hub
from server.trips import TripTracker

N_VEHICLES = 40
PER_VEHICLE = 1000
N_MESSAGES = N_VEHICLES * PER_VEHICLE
N_PUBLISHERS = 4
T0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
DRAIN_TIMEOUT_S = 60.0


def _payloads(routes: Sequence[Route]) -> list[tuple[str, bytes]]:
    """Interleaved positions of every vehicle along its route, a fix a second, 22 m apart."""
    rng = np.random.default_rng(7)
    per_vehicle = []
    for v in range(N_VEHICLES):
        route = routes[v]
        node = f"TRK-{v:03d}"
        out = []
        for i in range(PER_VEHICLE):
            p = route.line_m.interpolate(min(i * 22.0, route.line_m.length))
            lon, lat = route.projection.inverse(p.x + rng.normal(0, 4), p.y + rng.normal(0, 4))
            ts = (T0 + timedelta(seconds=i + 1)).isoformat().replace("+00:00", "Z")
            body = {
                "node_id": node,
                "seq": i + 1,
                "ts": ts,
                "lat": round(lat, 7),
                "lon": round(lon, 7),
                "speed_kmh": 79.0,
                "course_deg": 90.0,
                "fix": "3d",
                "sats": 12,
                "hdop": 0.9,
                "systems": ["GPS", "BDS"],
            }
            out.append((topics.position(node), json.dumps(body).encode()))
        per_vehicle.append(out)
    return [per_vehicle[v][i] for i in range(PER_VEHICLE) for v in range(N_VEHICLES)]


def _publish_process(host: str, port: int, messages: list[tuple[str, bytes]], tag: str) -> None:
    """`N_PUBLISHERS` paho clients publish their shares at QoS 1 without waiting per
    message (paho keeps up to 1000 in flight each), then wait for every PUBACK."""
    import threading

    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    def one(k: int, share: list[tuple[str, bytes]]) -> None:
        client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{tag}-{k}")
        client.max_inflight_messages_set(1000)
        client.max_queued_messages_set(0)
        client.connect(host, port)
        client.loop_start()
        infos = [client.publish(t, p, qos=1) for t, p in share]
        for info in infos:
            info.wait_for_publish(30)
        client.loop_stop()
        client.disconnect()

    threads = [
        threading.Thread(target=one, args=(k, messages[k::N_PUBLISHERS]))
        for k in range(N_PUBLISHERS)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def _start_publishers(broker: MosquittoBroker, messages: list[tuple[str, bytes]], tag: str) -> Any:
    ctx = multiprocessing.get_context("spawn")
    proc = ctx.Process(target=_publish_process, args=(broker.host, broker.port, messages, tag))
    proc.start()
    return proc


def _join(proc: Any) -> None:
    proc.join(60)
    if proc.exitcode != 0:
        raise RuntimeError(f"publisher process failed ({proc.exitcode})")


async def _drain_baseline(broker: MosquittoBroker, messages: list[tuple[str, bytes]]) -> float:
    settings = BrokerSettings(host=broker.host, port=broker.port)
    received = 0
    async with make_client(settings, "bench-drain") as client:
        for filt in topics.server_subscriptions(None):
            await client.subscribe(filt, qos=1)
        proc = _start_publishers(broker, messages, "drain")
        started = 0.0
        async with asyncio.timeout(DRAIN_TIMEOUT_S):
            async for _ in client.messages:
                if received == 0:
                    started = time.perf_counter()
                received += 1
                if received >= N_MESSAGES:
                    break
        rate = (N_MESSAGES - 1) / (time.perf_counter() - started)
    await asyncio.to_thread(_join, proc)
    return rate


def _setup_store(store: Store) -> None:
    for v in range(N_VEHICLES):
        declaration_id = f"D-{v:04d}"
        store.create_declaration(
            {
                "declaration_id": declaration_id,
                "enterprise": {"code": "4401960001", "name": "bench", "credit": "general"},
                "vehicle_id": f"TRK-{v:03d}",
                "plate": f"粤A·{v:05d}",
                "lock_ids": [f"EL-{v}"],
                "containers": ["CSQU3054383"],
                "origin_gate": "G-A",
                "destination_gate": "G-B",
                "route_id": f"R{v}",
                "time_limit_min": 600,
            },
            T0 - timedelta(hours=1),
        )
        store.start_trip(declaration_id, T0)


async def _drain_ingest(
    broker: MosquittoBroker, messages: list[tuple[str, bytes]], store: Store, geo: Geography
) -> float:
    settings = BrokerSettings(host=broker.host, port=broker.port)
    metrics = Metrics()
    done = asyncio.Event()
    handled = 0
    first: float | None = None

    async def count(batch: Sequence[IncomingMessage]) -> None:
        nonlocal handled
        handled += len(batch)
        if handled >= N_MESSAGES:
            done.set()

    judge = Judge(store, geo, dict(DEFAULT_PROFILES), AlarmEffects(AlarmService(store.engine)))
    hub = Hub()
    console = hub.connect("bench-console")  # one console connected: positions fan out

    async def read_console() -> None:
        while True:
            await console.next()

    reader = asyncio.create_task(read_console())
    ingest = Ingest(
        settings,
        IngestSettings(),
        store,
        metrics,
        handlers=[TripTracker(store).on_messages, judge.on_messages, hub.on_messages, count],
        client_id="bench-ingest",
    )
    accept = ingest._accept

    def timed_accept(message: aiomqtt.Message) -> None:
        nonlocal first
        if first is None:
            first = time.perf_counter()
        accept(message)

    ingest._accept = timed_accept  # type: ignore[method-assign]
    task = asyncio.create_task(ingest.run())
    try:
        await asyncio.wait_for(ingest.connected.wait(), 20)
        proc = _start_publishers(broker, messages, "ingest")
        await asyncio.wait_for(done.wait(), DRAIN_TIMEOUT_S)
        assert first is not None
        rate = (N_MESSAGES - 1) / (time.perf_counter() - first)
        await asyncio.to_thread(_join, proc)
    finally:
        task.cancel()
        reader.cancel()
        await asyncio.gather(task, reader, return_exceptions=True)
    stored = metrics.value("bondwatch_ingest_messages_total", outcome="stored")
    if stored != N_MESSAGES:
        raise RuntimeError(f"ingest stored {stored} of {N_MESSAGES}")
    return rate


def run() -> dict[str, dict[str, Any]]:
    logging.getLogger("server").setLevel(logging.WARNING)
    rng = np.random.default_rng(42)
    routes = _routes(rng)
    geo = Geography(routes, [], [], _zones(rng, routes[0]))
    messages = _payloads(routes)
    with tempfile.TemporaryDirectory(prefix="bench-server-") as tmp:
        work = Path(tmp)
        with MosquittoBroker(work / "broker") as broker:
            drain_rate = asyncio.run(_drain_baseline(broker, messages))
            store = Store.open(f"sqlite:///{work / 'store.db'}")
            try:
                _setup_store(store)
                ingest_rate = asyncio.run(_drain_ingest(broker, messages, store, geo))
            finally:
                store.close()
    return {
        "server.ingest_positions_per_s": {
            "value": ingest_rate,
            "unit": "1/s",
            "target": 10_000.0,
            "better": "higher",
        },
        "server.broker_drain_per_s": {
            "value": drain_rate,
            "unit": "1/s",
            "target": None,
            "better": "higher",
        },
    }


if __name__ == "__main__":
    for name, m in run().items():
        print(f"{name:32s} {m['value']:12.2f} {m['unit']}")

"""Server ingest benchmark: positions through a real Mosquitto into the whole ingest path.

One run, one broker (`devtools.broker.MosquittoBroker`, the production broker
settings), one SQLite store in a temp dir, a Geography of 10,000 routes and 10,000
zones, `N_VEHICLES` trucks in transit (each on its own route), and the handlers of
`server.app`: trip tracker, gate service (signing and publishing commands), judge,
live-stream hub with one console connected.

- `server.broker_drain_per_s` — the baseline: a bare aiomqtt client (QoS 1,
  persistent session) drains a backlog of `N_MESSAGES` positions that the broker
  holds for it; timed from connecting until the last message is in.
- `server.ingest_positions_per_s` — the same backlog, drained the same way by
  `server.ingest.Ingest`: validated, stored exactly once, acknowledged, trips
  updated, offered to the stream, and judged by the rules in the judge worker, a child
  process of its own as the server runs by default (`ingest.judge: process`); timed
  from connecting until the judge worker has judged the last position. Both drains
  start after a warm-up message per truck (the judge has each trip's run), so the
  steady state is measured; each runs `DRAIN_ROUNDS` times on fresh backlogs and the
  fastest counts. `server.ingest_to_drain_ratio` is the one over the other.
  `server.c_client_drain_per_s` — a second baseline: Mosquitto's C client
  (`mosquitto_sub`, QoS 1, MQTT 5, persistent session) drains the same kind of backlog
  (how far the machine's limit is; left out where it is not installed).
  `server.ingest_cpu_us_per_position` / `server.judge_cpu_us_per_position` — CPU time
  (user + system) a position of that drain took in the server's process (receive,
  validate, store, acknowledge, stream, hand to the judge) and in the judge worker: on
  a machine shared with others the rates move by half between runs of the same code,
  these far less.
  `server.postgres_ingest_one_judge_per_s` / `_two_judges_per_s` — the same drains on
  PostgreSQL (a throw-away server, `devtools.postgres`, without fsync) with one and
  with two judge workers (`ingest.judge_workers`), `server.postgres_judge_cpu_us_*`
  the judges' CPU a position together, `server.postgres_two_to_one_judge_ratio` the
  one rate over the other; left out where PostgreSQL is not installed.
  A backlog is drained rather than a live stream so that the publishers do not set
  the pace of both; they write packets built in advance (`bench.mqtt_load`), so that
  they take little of the 2 cores the server runs on.
- `server.gate_decision_ms_p99` / `_p50` — gate controllers publish a passage every
  `PASSAGE_EVERY_S` while trucks report live at `server.gate_decision_load_per_s`
  positions per second (the issue's 10,000/s, or 80 % of the measured ingest
  rate when that is lower, so the queue does not grow without bound; the environment
  variable `BONDWATCH_BENCH_GATE_LOAD` sets it instead, to measure the decision under a
  load the ingest cannot keep up with, the rest queueing in the broker); latency is
  from publishing the passage to receiving its signed command. Passages are taken and
  decided by the gate worker, a child process of its own (`server.gates.worker`), as
  the server runs by default (`ingest.passages: process`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from shapely.geometry import Polygon

from bench.bench_geo import _routes, _zones
from contract import topics
from contract.broker import BrokerSettings
from contract.ids import format_ts, utc_now
from contract.mqtt_client import SESSION_EXPIRY_S, make_client
from contract.signing import generate_private_key, private_key_to_pem
from devices.ocr.iso6346 import with_check_digit
from devtools.broker import MosquittoBroker, free_port
from devtools.postgres import TempPostgres, fresh_database
from server.alarms import AlarmService
from server.config import IngestSettings, ServerConfig, StorageSettings
from server.gates.commands import CommandPublisher, CommandSigner
from server.gates.config import GatesSettings
from server.gates.service import GateService
from server.gates.worker import GateWorker, WorkerSpec
from server.geo import Gate, Geography, Route, Site
from server.ingest import Ingest
from server.judge_worker import JudgeSpec, JudgeWorkers
from server.lock_secrets import LockSecrets
from server.metrics import Metrics
from server.store import Store
from server.stream import Hub
from server.trips import TripTracker

N_VEHICLES = 1000
BACKLOG_PER_VEHICLE = 40
#: Each drain (the baseline's and the server's) is run this many times, each on a fresh
#: backlog, and the fastest is reported: the machine is shared and noisy (a run of the
#: same code was seen anywhere between 6,400 and 12,200 positions/s).
DRAIN_ROUNDS = 2
PER_VEHICLE = 1 + DRAIN_ROUNDS * BACKLOG_PER_VEHICLE  # one warm-up position, then backlogs
N_MESSAGES = N_VEHICLES * BACKLOG_PER_VEHICLE
N_PUBLISHERS = 4  # N_VEHICLES a multiple of it: each truck on one connection, in order
# Trips start a minute before the bench: fix times near the clock, as live trucks send
# them, so that the rule timers (silence, time limit) raise nothing.
T0 = utc_now().replace(microsecond=0) - timedelta(minutes=1)
DRAIN_TIMEOUT_S = 120.0
TARGET_PER_S = 25_000.0
#: The ingest's rate as a share of the bare Python client's drain of the same backlog.
DRAIN_RATIO_TARGET = 0.9
#: The gate decision is measured under this live load (or less, `gate_decision_load_per_s`).
GATE_LOAD_PER_S = 10_000.0
LOAD_S = 12.0
PASSAGE_EVERY_S = 0.05
N_PASSAGES = int(LOAD_S / PASSAGE_EVERY_S)  # as long as the load runs
N_GATE_TRIPS = N_PASSAGES + 10
GATE_ID = "G-BENCH"
GEO_SEED = 42
SITE_ID = "S-BENCH"
GATE_LOAD_ENV = "BONDWATCH_BENCH_GATE_LOAD"

Message = tuple[str, bytes]


def _position(node: str, seq: int, route: Route, rng: np.random.Generator) -> Message:
    """A noisy fix `seq` seconds into the trip, 22 m a second along the route."""
    p = route.line_m.interpolate(min(seq * 22.0, route.line_m.length))
    lon, lat = route.projection.inverse(p.x + rng.normal(0, 4), p.y + rng.normal(0, 4))
    body = {
        "node_id": node,
        "seq": seq,
        "ts": format_ts(T0 + timedelta(seconds=seq)),
        "lat": round(lat, 7),
        "lon": round(lon, 7),
        "speed_kmh": 79.0,
        "course_deg": 90.0,
        "fix": "3d",
        "sats": 12,
        "hdop": 0.9,
        "systems": ["GPS", "BDS"],
    }
    return topics.position(node), json.dumps(body).encode()


def _positions(routes: Sequence[Route], first: int, count: int) -> list[Message]:
    """Positions `first`… of every truck, interleaved as trucks report."""
    rng = np.random.default_rng(first)
    return [
        _position(f"TRK-{v:04d}", seq, routes[v], rng)
        for seq in range(first, first + count)
        for v in range(N_VEHICLES)
    ]


# ---- publishers (a separate process, as trucks are) ------------------------------------


def _publish_process(
    host: str, port: int, messages: list[Message], tag: str, rate: float | None
) -> None:
    """`N_PUBLISHERS` connections publish their shares at QoS 1 (`bench.mqtt_load`: packets
    built in advance, so that the publishers take little of the server's CPU), as fast
    as the broker takes them or at `rate` messages a second in all, and wait for every
    PUBACK. Each truck's messages go through one connection, in order."""
    import threading

    from bench import mqtt_load

    errors: list[BaseException] = []

    def one(k: int, share: list[Message]) -> None:
        per = rate / N_PUBLISHERS if rate is not None else None
        try:
            mqtt_load.publish(host, port, f"bench-pub-{tag}-{k}", share, per, DRAIN_TIMEOUT_S)
        except (OSError, TimeoutError) as err:
            errors.append(err)

    threads = [
        threading.Thread(target=one, args=(k, messages[k::N_PUBLISHERS]))
        for k in range(N_PUBLISHERS)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise RuntimeError(f"publishing failed: {errors[0]}")


def _publish(
    broker: MosquittoBroker, messages: list[Message], tag: str, rate: float | None = None
) -> Any:
    ctx = multiprocessing.get_context("spawn")
    proc = ctx.Process(
        target=_publish_process, args=(broker.host, broker.port, messages, tag, rate)
    )
    proc.start()
    return proc


def _join(proc: Any) -> None:
    proc.join(DRAIN_TIMEOUT_S)
    if proc.exitcode != 0:
        raise RuntimeError(f"publisher process failed ({proc.exitcode})")


# ---- the baseline ------------------------------------------------------------------------


async def _receive(settings: BrokerSettings, client_id: str, count: int) -> float:
    """Connect with the persistent session and take `count` messages; seconds taken."""
    started = time.perf_counter()
    received = 0
    async with make_client(settings, client_id) as client:
        for filt in topics.server_subscriptions():
            await client.subscribe(filt, qos=1)
        if count:
            async with asyncio.timeout(DRAIN_TIMEOUT_S):
                async for _ in client.messages:
                    received += 1
                    if received >= count:
                        break
    return time.perf_counter() - started


async def _drain_baseline(
    broker: MosquittoBroker, warm: list[Message], backlogs: list[list[Message]]
) -> float:
    settings = BrokerSettings(host=broker.host, port=broker.port)
    client_id = f"bench-drain-{uuid.uuid4().hex[:6]}"
    await _receive(settings, client_id, 0)  # the session and its subscriptions
    # The bare client acknowledges what it receives (paho's automatic ack), even what
    # is still in flight when it stops: the backlog is published only after the warm-up.
    await asyncio.to_thread(_join, _publish(broker, warm, "drain-warm"))
    await _receive(settings, client_id, len(warm))
    rates = []
    for backlog in backlogs:
        await asyncio.to_thread(_join, _publish(broker, backlog, "drain"))
        rates.append(len(backlog) / await _receive(settings, client_id, len(backlog)))
    await _unsubscribe(settings, client_id)
    return max(rates)


async def _unsubscribe(settings: BrokerSettings, client_id: str) -> None:
    """End the baseline's subscriptions. Its session outlives it (persistent, as the
    server's): left subscribed, the broker would queue every later message for it as
    well — twice the broker's work while the server is measured, and a queue that
    its periodic save (`autosave_interval`) writes out in stalls of 0.3–0.4 s."""
    async with make_client(settings, client_id) as client:
        for filt in topics.server_subscriptions():
            await client.unsubscribe(filt)


# ---- the C client's baseline --------------------------------------------------------------

MOSQUITTO_SUB = "mosquitto_sub"


def _mosquitto_sub(broker: MosquittoBroker, client_id: str, *args: str) -> list[str]:
    """`mosquitto_sub` (Mosquitto's own C client) on the server's subscriptions, QoS 1,
    MQTT 5 with a persistent session (`-c`, a session expiry), output thrown away."""
    command = [MOSQUITTO_SUB, "-h", broker.host, "-p", str(broker.port), "-i", client_id]
    command += ["-c", "-x", str(SESSION_EXPIRY_S), "-V", "mqttv5", "-q", "1"]
    for filt in topics.server_subscriptions():
        command += ["-t", filt]
    return command + list(args)


def _run_sub(command: list[str]) -> float:
    """Run a `mosquitto_sub` to its end; seconds taken."""
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, timeout=DRAIN_TIMEOUT_S)
    return time.perf_counter() - started


async def _drain_c_client(broker: MosquittoBroker, backlogs: list[list[Message]]) -> float | None:
    """The same backlogs drained by `mosquitto_sub` (`-C N`: it leaves once it has N),
    timed from starting it; the fastest round. None where it is not installed."""
    if shutil.which(MOSQUITTO_SUB) is None:
        print(f"{MOSQUITTO_SUB} is not installed: no C client baseline")
        return None
    client_id = f"bench-c-drain-{uuid.uuid4().hex[:6]}"
    await asyncio.to_thread(_run_sub, _mosquitto_sub(broker, client_id, "-E"))  # the session
    rates = []
    for backlog in backlogs:
        await asyncio.to_thread(_join, _publish(broker, backlog, "c-drain"))
        command = _mosquitto_sub(broker, client_id, "-C", str(len(backlog)))
        rates.append(len(backlog) / await asyncio.to_thread(_run_sub, command))
    unsubscribe = _mosquitto_sub(broker, client_id, "-E")
    for filt in topics.server_subscriptions():
        unsubscribe += ["-U", filt]
    await asyncio.to_thread(_run_sub, unsubscribe)  # as `_unsubscribe`, for the same reason
    return max(rates)


# ---- the server -------------------------------------------------------------------------


def _declaration(v: str, route: str, container: str, origin: str, at: datetime) -> dict[str, Any]:
    return {
        "declaration_id": f"D-{v}",
        "enterprise": {"code": "4401960001", "name": "bench", "credit": "general"},
        "vehicle_id": v,
        "plate": f"粤A·{v[-5:]}",
        "lock_ids": [f"EL-{v}"],
        "containers": [container],
        "origin_gate": origin,
        "destination_gate": "G-FAR",
        "route_id": route,
        "time_limit_min": 600,
    }


def _container(i: int) -> str:
    return with_check_digit(f"BWBU{i:06d}")


def _setup_store(store: Store) -> None:
    for v in range(N_VEHICLES):
        vehicle = f"TRK-{v:04d}"
        body = _declaration(vehicle, f"R{v}", _container(v), "G-A", T0)
        store.create_declaration(body, T0 - timedelta(hours=1))
        store.start_trip(body["declaration_id"], T0)
    for g in range(N_GATE_TRIPS):  # declared, waiting at the bench gate
        vehicle = f"GTK-{g:05d}"
        body = _declaration(vehicle, "R0", _container(500_000 + g), GATE_ID, utc_now())
        store.create_declaration(body, utc_now())


@dataclass
class Server:
    """The ingest path as `server.app` wires it, with a count of messages handled."""

    config: ServerConfig
    broker: MosquittoBroker
    store: Store
    geo: Geography
    metrics: Metrics = field(default_factory=Metrics)
    judge_workers: int = 1
    client_id: str = "bench-ingest"
    handled: int = 0
    wanted: int = 0
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.settings = BrokerSettings(host=self.broker.host, port=self.broker.port)
        alarms = AlarmService(self.store.engine)
        self.publisher = CommandPublisher(self.settings, "bench-commands")
        self.gates = GateService(
            self.store,
            self.geo,
            GatesSettings(),
            CommandSigner(generate_private_key()),
            self.publisher,
            alarms,
            LockSecrets({}),
        )
        # The rules in their own process, as the server runs them by default
        # (`ingest.judge: process`); a batch is handled once the child has judged it.
        self.judge = JudgeWorkers(
            JudgeSpec(
                self.config,
                LockSecrets({}),
                geography=bench_geography,
                log_level=logging.WARNING,
            ),
            self.judge_workers,
            on_alarm=lambda alarm_id: alarms.notify([alarm_id]),
            on_judged=self._count,
        )
        self.hub = Hub()
        self.handlers = [
            TripTracker(self.store).on_messages,
            self.gates.on_messages,
            self.judge.on_messages,
            self.hub.on_messages,
        ]
        self.worker = GateWorker(
            WorkerSpec(
                self.config,
                LockSecrets({}),
                geography=bench_geography,
                log_level=logging.WARNING,
            ),
            on_passage=lambda _: None,
            on_alarm=lambda alarm_id: alarms.notify([alarm_id]),
        )

    def _count(self, judged: int) -> None:
        self.handled += judged  # every message of the bench is a position
        if self.handled >= self.wanted:
            self.done.set()

    def start(self) -> tuple[list[asyncio.Task[None]], list[Ingest]]:
        """The ingest connection of `server.app` for all but passages (the gate worker,
        a process of its own, takes those)."""
        ingests = [
            Ingest(
                self.settings,
                IngestSettings(),
                self.store,
                self.metrics,
                self.handlers,
                self.client_id,
                passages=False,
            )
        ]
        return [asyncio.create_task(i.run()) for i in ingests], ingests

    async def take(self, count: int) -> float:
        """Run fresh Ingests (the same sessions) until `count` more positions are handled."""
        self.wanted, self.done = self.handled + count, asyncio.Event()
        started = time.perf_counter()
        tasks, ingests = self.start()
        try:
            if count:
                await asyncio.wait_for(self.done.wait(), DRAIN_TIMEOUT_S)
            else:
                await asyncio.wait_for(asyncio.gather(*(i.connected.wait() for i in ingests)), 20)
            return time.perf_counter() - started
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


async def _read_console(hub: Hub) -> None:
    console = hub.connect("bench-console")  # one console connected: positions fan out
    while True:
        await console.next()


def _gate_process(settings: BrokerSettings, count: int, conn: Any) -> None:
    """A gate controller, a process of its own as on a real gate: says `ready` once
    subscribed, starts on `go`, and sends back its latencies."""
    conn.send(asyncio.run(_gate_latencies(settings, count, conn)))
    conn.close()


class GateController:
    """The parent's handle on `_gate_process`."""

    def __init__(self, settings: BrokerSettings, count: int) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._conn, theirs = ctx.Pipe(duplex=True)
        self._proc = ctx.Process(target=_gate_process, args=(settings, count, theirs))
        self._proc.start()
        theirs.close()

    async def _receive(self, wait_s: float) -> Any:
        try:
            if not await asyncio.to_thread(self._conn.poll, wait_s):
                raise RuntimeError(f"the gate controller process said nothing in {wait_s} s")
            return self._conn.recv()
        except EOFError as err:
            raise RuntimeError(f"the gate controller failed ({self._proc.exitcode})") from err

    async def ready(self) -> None:
        if await self._receive(60) != "ready":
            raise RuntimeError("the gate controller did not start")

    async def latencies(self) -> list[float]:
        """Start publishing; the latencies once every passage has its command."""
        self._conn.send("go")
        try:
            got: list[float] = await self._receive(LOAD_S * 2 + DRAIN_TIMEOUT_S)
        finally:
            await asyncio.to_thread(self._proc.join, 10)
        return got


async def _gate_latencies(settings: BrokerSettings, count: int, conn: Any) -> list[float]:
    """Publish `count` passages, one every `PASSAGE_EVERY_S`; ms to each command."""
    node = GATE_ID
    sent: dict[str, float] = {}
    latencies: list[float] = []
    answered = asyncio.Event()  # every passage sent so far has its command
    async with make_client(settings, f"bench-gate-{uuid.uuid4().hex[:6]}") as client:
        await client.subscribe(topics.command("gate", node), qos=1)

        async def receive() -> None:
            async for message in client.messages:
                assert isinstance(message.payload, bytes)
                passage_id = json.loads(message.payload)["passage_id"]
                if passage_id in sent:
                    latencies.append((time.perf_counter() - sent.pop(passage_id)) * 1000)
                    if not sent:
                        answered.set()

        receiver = asyncio.create_task(receive())
        conn.send("ready")
        if await asyncio.to_thread(conn.recv) != "go":
            raise RuntimeError("the bench did not start the gate controller")
        g = 0
        while g < count:
            vehicle = f"GTK-{g:05d}"
            passage_id = f"P-{uuid.uuid4().hex[:12]}"
            body = {
                "node_id": node,
                "seq": g + 1,
                "ts": format_ts(utc_now()),
                "passage_id": passage_id,
                "lane": "L1",
                "direction": "out",
                "containers": [
                    {
                        "number": _container(500_000 + g),
                        "confidence": 0.98,
                        "check_digit_ok": True,
                        "needs_review": False,
                    }
                ],
                "plate": {"text": f"粤A·{vehicle[-5:]}", "confidence": 0.95, "needs_review": False},
            }
            sent[passage_id] = time.perf_counter()
            await client.publish(topics.passage(node), json.dumps(body).encode(), qos=1)
            g += 1
            await asyncio.sleep(PASSAGE_EVERY_S)
        if sent:
            answered.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(answered.wait(), 10)
        receiver.cancel()
    if sent:
        raise RuntimeError(f"{len(sent)} of {g} passages got no command")
    return latencies


async def _run_server(
    config: ServerConfig,
    broker: MosquittoBroker,
    store: Store,
    geo: Geography,
    warm: list[Message],
    backlogs: list[list[Message]],
    routes: Sequence[Route],
    gate_load: float | None,
) -> dict[str, float]:
    server = Server(config, broker, store, geo)
    reader = asyncio.create_task(_read_console(server.hub))
    commands = asyncio.create_task(server.publisher.run())
    worker = asyncio.create_task(server.worker.run())
    judge = asyncio.create_task(server.judge.run())
    try:
        await asyncio.wait_for(server.worker.connected.wait(), 120)
        await asyncio.wait_for(server.judge.wait_ready(), 120)
        ingest_rate, server_cpu, judge_cpu = await _drains(server, broker, warm, backlogs)

        load_rate = gate_load or min(GATE_LOAD_PER_S, 0.8 * ingest_rate)
        per_vehicle = int(load_rate * LOAD_S / N_VEHICLES) + 1
        live = _positions(routes, PER_VEHICLE + 1, per_vehicle)
        tasks, _ = server.start()
        server.wanted, server.done = server.handled + len(live), asyncio.Event()
        gate = GateController(server.settings, N_PASSAGES)
        await gate.ready()
        load = _publish(broker, live, "live", rate=load_rate)
        latencies = await gate.latencies()
        await asyncio.to_thread(_join, load)
        await asyncio.wait_for(server.done.wait(), DRAIN_TIMEOUT_S)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await _unsubscribe(server.settings, server.client_id)  # for the drains after it
    finally:
        for task in (reader, commands, worker, judge):
            task.cancel()
        await asyncio.gather(reader, commands, worker, judge, return_exceptions=True)
    return {
        "ingest": ingest_rate,
        "server_cpu_us": server_cpu,
        "judge_cpu_us": judge_cpu,
        "load": load_rate,
        "p50": float(np.percentile(latencies, 50)),
        "p99": float(np.percentile(latencies, 99)),
    }


async def _drains(
    server: Server, broker: MosquittoBroker, warm: list[Message], backlogs: list[list[Message]]
) -> tuple[float, float, float]:
    """The warm-up, then each backlog drained by `server`: the fastest rate, and the CPU
    microseconds a position took in the server's process and in its judge workers
    together (the cheaper drain's)."""
    await server.take(0)  # the session and its subscriptions
    proc = _publish(broker, warm, "warm")
    await server.take(len(warm))
    await asyncio.to_thread(_join, proc)
    rates, server_cpu, judge_cpu = [], [], []
    for backlog in backlogs:
        await asyncio.to_thread(_join, _publish(broker, backlog, "backlog"))
        pids = [pid for pid in server.judge.pids if pid is not None]
        if len(pids) != len(server.judge.workers):
            raise RuntimeError("a judge worker is not running")
        cpu = time.process_time(), sum(map(_cpu_s, pids))
        rates.append(len(backlog) / await server.take(len(backlog)))
        server_cpu.append((time.process_time() - cpu[0]) / len(backlog) * 1e6)
        judge_cpu.append((sum(map(_cpu_s, pids)) - cpu[1]) / len(backlog) * 1e6)
    stored, sent = server.handled, len(warm) + sum(len(b) for b in backlogs)
    if stored != sent:
        raise RuntimeError(f"ingest handled {stored} of {sent}")
    return max(rates), min(server_cpu), min(judge_cpu)


async def _drain_postgres(
    config: ServerConfig,
    broker: MosquittoBroker,
    url: str,
    warm: list[Message],
    backlogs: list[list[Message]],
    judge_workers: int,
) -> tuple[float, float, float]:
    """The drains of `_drains` on a fresh PostgreSQL database at `url` with
    `judge_workers` judge workers."""
    config = config.model_copy(
        update={
            "storage": StorageSettings(url=url),
            "ingest": IngestSettings(judge_workers=judge_workers),
        }
    )
    store = Store.open(url)
    try:
        _setup_store(store)
        server = Server(
            config,
            broker,
            store,
            bench_geography(),
            judge_workers=judge_workers,
            client_id=f"bench-ingest-pg{judge_workers}",
        )
        commands = asyncio.create_task(server.publisher.run())
        judge = asyncio.create_task(server.judge.run())
        try:
            await asyncio.wait_for(server.judge.wait_ready(), 120)
            drained = await _drains(server, broker, warm, backlogs)
            await _unsubscribe(server.settings, server.client_id)
            return drained
        finally:
            for task in (commands, judge):
                task.cancel()
            await asyncio.gather(commands, judge, return_exceptions=True)
    finally:
        store.close()


def _postgres_drains(
    config: ServerConfig,
    broker: MosquittoBroker,
    warm: list[Message],
    backlogs: list[list[Message]],
) -> dict[int, tuple[float, float, float]] | None:
    """`_drain_postgres` with one and with two judge workers on a throw-away PostgreSQL
    server; None where PostgreSQL is not installed (said on stderr)."""
    try:
        server = TempPostgres(free_port())
        root = server.start()
    except (RuntimeError, OSError, subprocess.CalledProcessError) as err:
        print(f"bench server: PostgreSQL drains left out: {err}", file=sys.stderr)
        return None
    try:
        return {
            workers: asyncio.run(
                _drain_postgres(config, broker, fresh_database(root), warm, backlogs, workers)
            )
            for workers in (1, 2)
        }
    finally:
        server.stop()


def _cpu_s(pid: int) -> float:
    """CPU seconds (user + system) process `pid` has used (`/proc/<pid>/stat`)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _gate_load() -> float | None:
    """The live load of the gate measurement as `BONDWATCH_BENCH_GATE_LOAD` sets it."""
    text = os.environ.get(GATE_LOAD_ENV)
    if not text:
        return None
    try:
        rate = float(text)
    except ValueError:
        rate = 0.0
    if not 0 < rate <= 100_000:
        raise ValueError(f"{GATE_LOAD_ENV}={text!r}: positions a second, above 0, at most 100000")
    return rate


def _geography(routes: list[Route], rng: np.random.Generator) -> Geography:
    lon, lat = routes[0].line.coords[0]
    d = 0.005
    fence = Polygon(
        [(lon - d, lat - d), (lon + d, lat - d), (lon + d, lat + d), (lon - d, lat + d)]
    )
    return Geography(
        routes,
        [Site(SITE_ID, "bench yard", fence)],
        [Gate(GATE_ID, SITE_ID, "bench gate", lon, lat)],
        _zones(rng, routes[0]),
    )


def bench_geography() -> Geography:
    """The bench's geography, the same in every process that builds it (the gate worker)."""
    rng = np.random.default_rng(GEO_SEED)
    return _geography(_routes(rng), rng)


def run() -> dict[str, dict[str, Any]]:
    gate_load = _gate_load()  # a bad value stops the bench before it starts
    logging.getLogger("server").setLevel(logging.WARNING)
    geo = bench_geography()
    routes = list(geo.routes)
    warm = _positions(routes, 1, 1)
    backlogs = [
        _positions(routes, 2 + r * BACKLOG_PER_VEHICLE, BACKLOG_PER_VEHICLE)
        for r in range(DRAIN_ROUNDS)
    ]
    with tempfile.TemporaryDirectory(prefix="bench-server-") as tmp:
        work = Path(tmp)
        with MosquittoBroker(work / "broker") as broker:
            drain_rate = asyncio.run(_drain_baseline(broker, warm, backlogs))
            c_drain_rate = asyncio.run(_drain_c_client(broker, backlogs))
            store = Store.open(f"sqlite:///{work / 'store.db'}")
            key_file = work / "server.pem"
            key_file.write_bytes(private_key_to_pem(generate_private_key()))
            config = ServerConfig(
                broker=BrokerSettings(host=broker.host, port=broker.port, client_id="bench"),
                storage=StorageSettings(url=f"sqlite:///{work / 'store.db'}"),
                signing_key_file=key_file,
            )
            try:
                _setup_store(store)
                got = asyncio.run(
                    _run_server(config, broker, store, geo, warm, backlogs, routes, gate_load)
                )
            finally:
                store.close()
            postgres = _postgres_drains(config, broker, warm, backlogs)

    def metric(value: float, unit: str, target: float | None, better: str) -> dict[str, Any]:
        return {"value": value, "unit": unit, "target": target, "better": better}

    results = {
        "server.ingest_positions_per_s": metric(got["ingest"], "1/s", TARGET_PER_S, "higher"),
        "server.broker_drain_per_s": metric(drain_rate, "1/s", None, "higher"),
        "server.ingest_to_drain_ratio": metric(
            got["ingest"] / drain_rate, "", DRAIN_RATIO_TARGET, "higher"
        ),
        "server.gate_decision_ms_p99": metric(got["p99"], "ms", 20.0, "lower"),
        "server.gate_decision_ms_p50": metric(got["p50"], "ms", 8.0, "lower"),
        "server.gate_decision_load_per_s": metric(got["load"], "1/s", GATE_LOAD_PER_S, "higher"),
        # CPU a position in a drain (the cheaper of the two), which moves far less with
        # the machine's neighbours than the rates: the server process (receive,
        # validate, store, acknowledge, stream, hand to the judge) and the judge worker
        "server.ingest_cpu_us_per_position": metric(got["server_cpu_us"], "us", None, "lower"),
        "server.judge_cpu_us_per_position": metric(got["judge_cpu_us"], "us", None, "lower"),
    }
    if postgres is not None:
        # Several judge workers on one PostgreSQL (`ingest.judge_workers`): the drain's
        # rate and the judges' CPU a position, with one and with two
        for workers, name in ((1, "one_judge"), (2, "two_judges")):
            rate, _, judge_cpu = postgres[workers]
            results[f"server.postgres_ingest_{name}_per_s"] = metric(rate, "1/s", None, "higher")
            results[f"server.postgres_judge_cpu_us_{name}"] = metric(judge_cpu, "us", None, "lower")
        results["server.postgres_two_to_one_judge_ratio"] = metric(
            postgres[2][0] / postgres[1][0], "", None, "higher"
        )
    if c_drain_rate is not None:
        results["server.c_client_drain_per_s"] = metric(c_drain_rate, "1/s", None, "higher")
        results["server.ingest_to_c_client_ratio"] = metric(
            got["ingest"] / c_drain_rate, "", None, "higher"
        )
    return results


if __name__ == "__main__":
    for name, m in run().items():
        print(f"{name:32s} {m['value']:12.2f} {m['unit']}")

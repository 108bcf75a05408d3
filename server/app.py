"""Assemble the server: `ServerApp`, one named step per component, in one TaskGroup;
`create_app`, the REST API and console over what the steps built."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable
from dataclasses import dataclass

import uvicorn
from fastapi import Depends, FastAPI

from contract.version import CONTRACT_VERSION
from server import assembly
from server.alarms import AlarmService
from server.alarms.clock_ahead import ClockAheadAlarms
from server.alarms.escalation import EscalationPolicy, Escalator
from server.api import alarms as alarms_api
from server.api import appointments as appointments_api
from server.api import audit as audit_api
from server.api import console_views, errors
from server.api import dead_letters as dead_letters_api
from server.api import evidence as evidence_api
from server.api import gates as gates_api
from server.api import reports as reports_api
from server.api.auth import install_auth
from server.api.gates import passage_out
from server.api.operations import install_operations, operations_app
from server.api.routes import health_router, router
from server.audit.checkpointer import AuditCheckpoints
from server.auth.config import AuthSettings
from server.auth.dependencies import guard
from server.config import ServerConfig
from server.console import basemap
from server.console.config import ConsoleSettings
from server.console.web import mount_console
from server.declared import DeclaredPublisher
from server.evidence.service import EvidenceService
from server.gates.commands import Publisher
from server.gates.judged import JudgedAgain
from server.gates.service import DROPPED_PASSAGES, GateService
from server.gates.worker import GateWorker, WorkerSpec
from server.geo import Geography
from server.ingest import FreshHandler, count_rejected
from server.judge_worker import JudgeSpec, JudgeWorkers
from server.lock_secrets import LockSecrets
from server.metrics import Metrics
from server.rules.profiles import CreditClass, CreditProfile
from server.services import Services
from server.store import Store
from server.stream import STREAM_LIMITS, alarm_publisher, stream_router
from server.stream.hub import Hub
from server.telemetry import TelemetryWriter
from server.trips import TripTracker

log = logging.getLogger(__name__)


def create_app(
    svc: Services,
    auth: AuthSettings | None = None,
    console: ConsoleSettings | None = None,
) -> FastAPI:
    """The ASGI app over what the server built (`svc`); `auth`/`console` default to the
    server configuration's."""
    app = FastAPI(
        title="BondWatch",
        version=CONTRACT_VERSION,
        description="Customs-bonded transport monitoring: declarations, trips, alarms, gates.",
        # Served by server.api.operations: to signed-in accounts, or on their own listener.
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    app.state.services = svc
    errors.install(app)
    # --- accounts and console (server.auth, server.console) ---
    auth = auth or svc.config.auth
    console = console or svc.config.console
    install_auth(app, svc.store.engine, auth)
    # Every /api/v1 router is included with the guard: reads need an account, writes the
    # roles in server.auth.policy (routers may narrow further with require(...)).
    app.include_router(router, dependencies=[Depends(guard)])
    app.include_router(health_router)
    if svc.config.http.operations_listener is None:
        install_operations(app, app, svc, signed_in=True)
    mount_console(app, console)
    app.include_router(alarms_api.router, dependencies=[Depends(guard)])  # alarm lifecycle
    app.include_router(audit_api.router, dependencies=[Depends(guard)])  # hash-chained audit
    app.include_router(gates_api.router, dependencies=[Depends(guard)])  # passages, releases
    app.include_router(console_views.router, dependencies=[Depends(guard)])  # console pages
    app.include_router(basemap.router, dependencies=[Depends(guard)])  # offline map background
    app.include_router(reports_api.router, dependencies=[Depends(guard)])  # supervisor reports
    app.include_router(dead_letters_api.router, dependencies=[Depends(guard)])  # refused input
    app.include_router(evidence_api.router, dependencies=[Depends(guard)])  # passage images
    app.include_router(appointments_api.router, dependencies=[Depends(guard)])  # booked vehicles
    # --- live stream (server.stream): authenticates its own handshake, so no guard ---
    app.state.stream_hub = svc.stream
    app.include_router(stream_router)
    return app


def build_services(config: ServerConfig, publisher: Publisher | None) -> Services:
    """What the REST API needs, built by the same steps as the server's, for the tests
    and tools that run the API without the broker connections: the gate service's
    commands go to `publisher` (None: recorded, not sent), and the ingest is never
    connected."""
    app = ServerApp(config)
    storage = app.start_store()
    world = app.start_geography()
    alarms = app.start_alarms(storage)
    gates = app.gate_service(storage, world, alarms, publisher)
    return app.services(storage, world, alarms, gates, ingest_connected=never_connected)


def never_connected() -> bool:
    """The ingest of an app built without broker connections (`build_services`)."""
    return False


def escalator_for(alarms: AlarmService, console: ConsoleSettings) -> Escalator:
    """The periodic escalation of unacknowledged alarms (server.alarms.escalation)."""
    policy = EscalationPolicy.from_minutes(console.escalate_after_min, console.escalate_severities)
    return Escalator(alarms, policy, console.escalation_check_s)


async def serve(config: ServerConfig, ready: asyncio.Event | None = None) -> None:
    """Run until cancelled or SIGTERM/SIGINT (`ready`: set once the HTTP server and
    every broker connection are up, for the tests)."""
    await ServerApp(config).run(ready)


# ---- what each step built -----------------------------------------------------------


@dataclass(frozen=True)
class Storage:
    """The store step: the database, the passage images, the audit checkpoints."""

    store: Store
    evidence: EvidenceService
    #: signs the audit chain's checkpoints (None: `audit.checkpoints` not configured)
    audit_checkpoints: AuditCheckpoints | None


@dataclass(frozen=True)
class World:
    """The geography step: routes and zones, credit profiles, lock secrets."""

    geography: Geography
    profiles: dict[CreditClass, CreditProfile]
    lock_secrets: LockSecrets


@dataclass(frozen=True)
class Alarms:
    """The alarm service (its changes reach the console stream) and the episodes of
    `DEVICE_CLOCK_AHEAD` (server.alarms.clock_ahead)."""

    service: AlarmService
    clock_ahead: ClockAheadAlarms


@dataclass(frozen=True)
class Running:
    """The tasks a step started; its stop cancels them."""

    tasks: tuple[asyncio.Task[None], ...]
    #: whether what the step runs is up (its broker connections, its child)
    up: Callable[[], bool] = lambda: True

    def stop(self) -> None:
        for task in self.tasks:
            task.cancel()


@dataclass(frozen=True)
class Judging:
    """The judge step: the ingest's handler, and the judge's tasks (the rule timers,
    or the judge worker that runs them)."""

    on_messages: FreshHandler
    running: Running


@dataclass(frozen=True)
class Gates:
    """The gates step: the server's gate service (officer actions, remote unseal, and
    passages when taken in this process) and, with `ingest.passages: process`, the
    gate worker that takes and decides the passages."""

    service: GateService
    running: Running
    #: passages in the gate worker's process, not on the server's ingest connection
    in_worker: bool
    #: the trucks' `declared` lists, on the command connection (server.declared)
    declared: DeclaredPublisher


@dataclass(frozen=True)
class Http:
    server: uvicorn.Server
    operations: uvicorn.Server | None
    tasks: tuple[asyncio.Task[None], ...]


# ---- the application ----------------------------------------------------------------


class ServerApp:
    """The server, assembled in one place. `run` takes the steps in order — store,
    geography, alarms, judge, gates, ingest, timers, HTTP — and stops them in reverse:
    the HTTP listeners first, the store last. Each step builds its components once
    from the configuration (`server.assembly`, which the child processes use too) and
    from what the steps before it built, passed in."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.metrics = Metrics()
        self.stream = Hub()  # live events for `WS /api/v1/stream` (server.stream)
        self._log_level = logging.getLogger().getEffectiveLevel()

    async def run(self, ready: asyncio.Event | None = None) -> None:
        storage = self.start_store()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        try:
            world = self.start_geography()
            alarms = self.start_alarms(storage)
            async with asyncio.TaskGroup() as group:
                judging = self.start_judge(group, storage, world, alarms)
                gates = self.start_gates(group, storage, world, alarms)
                ingest = self.start_ingest(group, storage, alarms, judging, gates)
                timers = self.start_timers(group, storage, alarms)
                steps = (judging.running, gates.running, ingest)
                svc = self.services(
                    storage,
                    world,
                    alarms,
                    gates.service,
                    lambda: all(s.up() for s in steps),
                    declared=gates.declared,
                )
                http = await self.start_http(group, svc)
                if ready is not None:
                    while not svc.ingest_connected():  # noqa: ASYNC110 - several sources
                        await asyncio.sleep(0.05)
                    ready.set()
                await stop.wait()
                log.info("shutting down")
                await self.stop_http(http)
                self.stop_timers(timers)
                self.stop_ingest(ingest)
                self.stop_gates(gates)
                self.stop_judge(judging)
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
            self.stop_store(storage)

    # ---- store ----

    def start_store(self) -> Storage:
        config = self.config
        store = assembly.open_store(config)
        try:
            checkpoints = (
                AuditCheckpoints.for_server(
                    config.audit.checkpoints, config.signing_key_file, self.metrics
                )
                if config.audit.checkpoints is not None
                else None
            )
            evidence = EvidenceService.from_settings(store.engine, config.evidence)
        except BaseException:
            store.close()
            raise
        return Storage(store, evidence, checkpoints)

    def stop_store(self, storage: Storage) -> None:
        storage.store.close()

    # ---- geography (and what else is read once from files) ----

    def start_geography(self) -> World:
        config = self.config
        return World(
            assembly.load_geography(config),
            assembly.load_profiles(config),
            assembly.load_lock_secrets(config),
        )

    # ---- alarms ----

    def start_alarms(self, storage: Storage) -> Alarms:
        service = assembly.alarm_service(storage.store, alarm_publisher(self.stream))
        return Alarms(service, ClockAheadAlarms(storage.store, service))

    # ---- judge ----

    def start_judge(
        self, group: asyncio.TaskGroup, storage: Storage, world: World, alarms: Alarms
    ) -> Judging:
        """The trip rules: in a child process (`ingest.judge: process`) or a worker
        thread; each also runs the rule timers."""
        config, metrics = self.config, self.metrics
        if config.ingest.judge == "thread":
            judge = assembly.judge(
                config, storage.store, world.geography, alarms.service, world.lock_secrets
            )
            task = group.create_task(judge.tick_forever(), name="rule-timers")
            return Judging(judge.on_messages, Running((task,)))
        metrics.describe("bondwatch_judge_messages_total", "edge messages judged by the rules")
        metrics.describe(
            "bondwatch_judge_pending_messages",
            "stored messages handed to the judge, not judged yet",
        )
        metrics.describe(
            "bondwatch_judge_bad_rows_total", "stored messages the judge could not decode"
        )
        metrics.describe(
            "bondwatch_judge_workers_down",
            "judge workers not running or not ready (their vehicles' messages are left "
            "to the store until one is)",
        )
        metrics.describe(
            "bondwatch_judge_workers_stalled_total",
            "judge workers killed because they hung (silent for `ingest.judge_stall_s`)",
        )
        spec = JudgeSpec(
            config,
            lock_secrets=world.lock_secrets,
            log_level=self._log_level,
            stall_s=config.ingest.judge_stall_s,
        )
        workers = JudgeWorkers(
            spec,
            config.ingest.judge_workers,
            on_alarm=lambda alarm_id: alarms.service.notify([alarm_id]),
            on_judged=lambda n: metrics.inc("bondwatch_judge_messages_total", n),
            on_bad_rows=lambda n: metrics.inc("bondwatch_judge_bad_rows_total", n),
            on_pending=lambda n: metrics.set("bondwatch_judge_pending_messages", n),
            on_down=lambda n: metrics.set("bondwatch_judge_workers_down", n),
            on_stalled=lambda: metrics.inc("bondwatch_judge_workers_stalled_total"),
        )
        task = group.create_task(workers.run(), name="judge-workers")
        return Judging(workers.on_messages, Running((task,), workers.is_ready))

    def stop_judge(self, judging: Judging) -> None:
        """The rule timers, or the judge worker (its child gets SIGTERM)."""
        judging.running.stop()

    # ---- gates ----

    def start_gates(
        self, group: asyncio.TaskGroup, storage: Storage, world: World, alarms: Alarms
    ) -> Gates:
        config, metrics = self.config, self.metrics
        # Commands go out on the server's own connection (its own persistent session).
        publisher = assembly.command_publisher(config, "commands")
        service = self.gate_service(storage, world, alarms, publisher)
        declared = assembly.declared_publisher(storage.store, publisher)
        tasks = [
            group.create_task(publisher.run(), name="command-publisher"),
            group.create_task(declared.run_forever(), name="declared-publisher"),
            # arrivals held until the judge caught up: decided again (server.gates.judged)
            group.create_task(JudgedAgain(service).run_forever(), name="judged-again"),
        ]
        if config.ingest.passages == "shared":
            return Gates(service, Running(tuple(tasks)), in_worker=False, declared=declared)
        worker = GateWorker(
            WorkerSpec(config, lock_secrets=world.lock_secrets, log_level=self._log_level),
            on_passage=self._passage_to_stream(service),
            on_alarm=lambda alarm_id: alarms.service.notify([alarm_id]),
            on_dropped=self._count_dropped,
            on_rejected=lambda channel, reason: count_rejected(metrics, channel, reason),
        )
        tasks.append(group.create_task(worker.run(), name="gate-worker"))
        return Gates(
            service,
            Running(tuple(tasks), worker.connected.is_set),
            in_worker=True,
            declared=declared,
        )

    def gate_service(
        self, storage: Storage, world: World, alarms: Alarms, publisher: Publisher | None
    ) -> GateService:
        """The gate service, its passages told to the live stream and its dropped
        passages counted."""
        service = assembly.gate_service(
            self.config,
            storage.store,
            world.geography,
            publisher,
            alarms.service,
            world.lock_secrets,
        )
        self.metrics.describe(
            DROPPED_PASSAGES, "passages dropped unstored: their node is not a configured gate"
        )
        service.add_listener(self._passage_to_stream(service))
        service.add_drop_listener(self._count_dropped)
        return service

    def _passage_to_stream(self, service: GateService) -> Callable[[str], None]:
        def publish(passage_id: str) -> None:
            row = service.gates.get_passage(passage_id)
            if row is not None:
                self.stream.publish("passage", passage_out(row).model_dump(mode="json"))

        return publish

    def _count_dropped(self, node_id: str) -> None:
        self.metrics.inc(DROPPED_PASSAGES, reason="unknown_gate")

    def stop_gates(self, gates: Gates) -> None:
        """The command publisher and the declared lists, and the gate worker (its child
        gets SIGTERM)."""
        gates.running.stop()

    # ---- ingest ----

    def start_ingest(
        self,
        group: asyncio.TaskGroup,
        storage: Storage,
        alarms: Alarms,
        judging: Judging,
        gates: Gates,
    ) -> Running:
        """The server's connection for the edge stream: every channel, or all but the
        passages when the gate worker takes those."""
        config = self.config
        trips = TripTracker(storage.store, start_on_first_fix=config.trips.start_on_first_fix)
        handlers = [
            trips.on_messages,
            gates.service.on_messages,
            judging.on_messages,
            self.stream.on_messages,
            alarms.clock_ahead.on_messages,
        ]
        tasks = []
        if config.telemetry is not None:
            telemetry = TelemetryWriter(config.telemetry, self.metrics)
            handlers.append(telemetry.on_messages)
            tasks.append(group.create_task(telemetry.run(storage.store), name="telemetry"))
        ingest = assembly.ingest(
            config,
            storage.store,
            self.metrics,
            handlers,
            on_rejected=[alarms.clock_ahead.on_rejected],
            passages=False if gates.in_worker else None,
            # Passages on this connection too: stored (or dropped) by the gate service.
            writer=None if gates.in_worker else gates.service.store_passages,
        )
        tasks.append(group.create_task(ingest.run(), name="ingest"))
        return Running(tuple(tasks), ingest.connected.is_set)

    def stop_ingest(self, ingest: Running) -> None:
        ingest.stop()

    # ---- timers ----

    def start_timers(self, group: asyncio.TaskGroup, storage: Storage, alarms: Alarms) -> Running:
        """Periodic work: alarm escalation, the end of clock-ahead episodes, SQLite
        checkpoints, the evidence retention sweep, signed audit checkpoints."""
        escalator = escalator_for(alarms.service, self.config.console)
        tasks = [
            group.create_task(escalator.run_forever(), name="alarm-escalation"),
            group.create_task(alarms.clock_ahead.run_forever(), name="clock-ahead"),
            group.create_task(storage.store.checkpoint_forever(), name="checkpoints"),
            group.create_task(storage.evidence.sweep_forever(), name="evidence-cleanup"),
        ]
        if storage.audit_checkpoints is not None:
            tasks.append(
                group.create_task(
                    storage.audit_checkpoints.run_forever(storage.store.engine),
                    name="audit-checkpoints",
                )
            )
        return Running(tuple(tasks))

    def stop_timers(self, timers: Running) -> None:
        timers.stop()

    # ---- HTTP ----

    def services(
        self,
        storage: Storage,
        world: World,
        alarms: Alarms,
        gates: GateService,
        ingest_connected: Callable[[], bool],
        declared: DeclaredPublisher | None = None,
    ) -> Services:
        """What the REST API shares with the rest of the server."""
        return Services(
            config=self.config,
            store=storage.store,
            geography=world.geography,
            profiles=world.profiles,
            alarms=alarms.service,
            lock_secrets=world.lock_secrets,
            gates=gates,
            evidence=storage.evidence,
            metrics=self.metrics,
            stream=self.stream,
            ingest_connected=ingest_connected,
            audit_checkpoints=storage.audit_checkpoints,
            declared=declared,
        )

    async def start_http(self, group: asyncio.TaskGroup, svc: Services) -> Http:
        """The REST API and console, and the operations listener when configured;
        returns once the API listens."""
        config = self.config
        app = create_app(svc)
        server = uvicorn.Server(
            uvicorn.Config(
                app,
                host=config.http.host,
                port=config.http.port,
                log_level="warning",
                lifespan="off",
                **STREAM_LIMITS,
            )
        )
        tasks = [group.create_task(server.serve(), name="http")]
        listener = config.http.operations_listener
        operations = None
        if listener is not None:
            operations = uvicorn.Server(
                uvicorn.Config(
                    operations_app(app, svc),
                    host=listener.host,
                    port=listener.port,
                    log_level="warning",
                    lifespan="off",
                )
            )
            tasks.append(group.create_task(operations.serve(), name="operations-http"))
        while not server.started:  # noqa: ASYNC110 - uvicorn offers no event for this
            await asyncio.sleep(0.02)
        port = server.servers[0].sockets[0].getsockname()[1] if server.servers else config.http.port
        print(f"bondwatch-server listening on http://{config.http.host}:{port}/", flush=True)
        return Http(server, operations, tuple(tasks))

    async def stop_http(self, http: Http) -> None:
        """Let the listeners finish the requests they have (uvicorn's graceful exit)."""
        http.server.should_exit = True
        if http.operations is not None:
            http.operations.should_exit = True
        for task in http.tasks:
            await task

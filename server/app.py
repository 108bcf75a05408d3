"""Assemble the server: store, geography, ingest, REST API and console, in one TaskGroup."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Callable, Coroutine
from typing import Any

import uvicorn
from fastapi import Depends, FastAPI

from contract.version import CONTRACT_VERSION
from server.alarms import AlarmService
from server.alarms.clock_ahead import ClockAheadAlarms
from server.alarms.effects import AlarmEffects
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
from server.broker_accounts import connection_id, connection_settings
from server.config import ServerConfig
from server.console import basemap
from server.console.config import ConsoleSettings
from server.console.web import mount_console
from server.evidence.service import EvidenceService
from server.gates.commands import CommandPublisher, CommandSigner
from server.gates.service import DROPPED_PASSAGES, GateService
from server.gates.worker import (
    GateWorker,
    WorkerSpec,
    passage_batches,
    passages_broker,
    passages_client_id,
)
from server.geo import Geography
from server.ingest import FreshHandler, Ingest, count_rejected
from server.judge import Judge
from server.judge_worker import JudgeSpec, JudgeWorker
from server.lock_secrets import LockSecrets
from server.rules.profiles import configured_profiles
from server.services import Services
from server.store import Store
from server.stream import STREAM_LIMITS, alarm_publisher, stream_router
from server.telemetry import TelemetryWriter
from server.trips import TripTracker

log = logging.getLogger(__name__)


def create_app(
    svc: Services,
    auth: AuthSettings | None = None,
    console: ConsoleSettings | None = None,
    gates: GateService | None = None,
) -> FastAPI:
    """The ASGI app; `auth`/`console` default to the server configuration's."""
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
    app.state.gates = gates  # None: server.api.gates makes one that sends no commands
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


def build_services(config: ServerConfig) -> Services:
    store = Store.open(config.storage.url, _db_password(config))
    geography = Geography.from_files(config.geography.routes, config.geography.zones)
    profiles = configured_profiles(config.geography.profiles)
    svc = Services(config=config, store=store, geography=geography, profiles=profiles)
    svc.alarms = AlarmService(store.engine)
    svc.alarms.add_listener(alarm_publisher(svc.stream))
    if config.audit.checkpoints is not None:
        svc.audit_checkpoints = AuditCheckpoints.for_server(
            config.audit.checkpoints, config.signing_key_file, svc.metrics
        )
    return svc


def escalator_for(alarms: AlarmService, console: ConsoleSettings) -> Escalator:
    """The periodic escalation of unacknowledged alarms (server.alarms.escalation)."""
    policy = EscalationPolicy.from_minutes(console.escalate_after_min, console.escalate_severities)
    return Escalator(alarms, policy, console.escalation_check_s)


def _db_password(config: ServerConfig) -> str | None:
    name = config.storage.password_env
    return os.environ.get(name) if name else None


async def serve(config: ServerConfig, ready: asyncio.Event | None = None) -> None:
    """Run until cancelled or SIGTERM/SIGINT."""
    svc = build_services(config)
    trips = TripTracker(svc.store, start_on_first_fix=config.trips.start_on_first_fix)
    alarm_service = svc.alarms or AlarmService(svc.store.engine)
    # The trip rules: in a child process (default) or a worker thread; each also runs the
    # rule timers (`judge_run`).
    judge_worker: JudgeWorker | None = None
    judging: FreshHandler
    judge_run: Callable[[], Coroutine[Any, Any, None]]
    if config.ingest.judge == "process":
        svc.metrics.describe("bondwatch_judge_messages_total", "edge messages judged by the rules")
        svc.metrics.describe(
            "bondwatch_judge_pending_messages",
            "stored messages handed to the judge, not judged yet",
        )
        svc.metrics.describe(
            "bondwatch_judge_bad_rows_total", "stored messages the judge could not decode"
        )
        judge_worker = JudgeWorker(
            JudgeSpec(config, log_level=logging.getLogger().getEffectiveLevel()),
            on_alarm=lambda alarm_id: alarm_service.notify([alarm_id]),
            on_judged=lambda n: svc.metrics.inc("bondwatch_judge_messages_total", n),
            on_bad_rows=lambda n: svc.metrics.inc("bondwatch_judge_bad_rows_total", n),
            on_pending=lambda n: svc.metrics.set("bondwatch_judge_pending_messages", n),
        )
        judging, judge_run = judge_worker.on_messages, judge_worker.run
    else:
        judge = Judge(
            svc.store,
            svc.geography,
            svc.profiles,
            AlarmEffects(alarm_service),
            lock_secrets=LockSecrets.load(config.gates.lock_secrets_file),
        )
        judging, judge_run = judge.on_messages, judge.tick_forever
    # Each broker connection has its own client id and account (server.broker_accounts).
    client_id = connection_id(config.broker, "ingest")
    # Commands go out on the server's own connection (its own persistent session).
    publisher = CommandPublisher(
        connection_settings(config.broker, config.broker_accounts, "commands"),
        connection_id(config.broker, "commands"),
    )
    gates = GateService(
        svc.store,
        svc.geography,
        config.gates,
        CommandSigner.from_file(config.signing_key_file, config.gates.command_ttl_s),
        publisher,
        alarm_service,
    )
    telemetry = TelemetryWriter(config.telemetry, svc.metrics) if config.telemetry else None
    escalator = escalator_for(alarm_service, config.console)
    # DEVICE_CLOCK_AHEAD: an episode opens at a node's first `clock_ahead` refusal and
    # ends when one of its messages is accepted again (server.alarms.clock_ahead).
    clock_ahead = ClockAheadAlarms(svc.store, alarm_service)
    handlers = [
        trips.on_messages,
        gates.on_messages,
        judging,
        svc.stream.on_messages,
        clock_ahead.on_messages,
    ]
    if telemetry is not None:
        handlers.append(telemetry.on_messages)
    where = config.ingest.passages
    ingest = Ingest(
        connection_settings(config.broker, config.broker_accounts, "ingest"),
        config.ingest,
        svc.store,
        svc.metrics,
        handlers=handlers,
        client_id=client_id,
        passages=None if where == "shared" else False,
        # Passages on this connection too: stored (or dropped) by the gate service.
        writer=gates.store_passages if where == "shared" else None,
        on_rejected=[clock_ahead.on_rejected],
    )
    ingests = [ingest]
    if where == "connection":
        passage_id = passages_client_id(config)
        ingests.append(
            Ingest(
                passages_broker(config),
                passage_batches(config.ingest),
                svc.store,
                svc.metrics,
                # Only what concerns passages: the judge's lock is held for whole
                # batches of positions, and a passage must not wait for it.
                handlers=[gates.on_messages, svc.stream.on_messages, clock_ahead.on_messages],
                client_id=passage_id,
                passages=True,
                writer=gates.store_passages,
                on_rejected=[clock_ahead.on_rejected],
            )
        )

    svc.metrics.describe(
        DROPPED_PASSAGES, "passages dropped unstored: their node is not a configured gate"
    )

    def count_dropped(node_id: str) -> None:
        svc.metrics.inc(DROPPED_PASSAGES, reason="unknown_gate")

    def passage_to_stream(passage_id: str) -> None:
        row = gates.gates.get_passage(passage_id)
        if row is not None:
            svc.stream.publish("passage", passage_out(row).model_dump(mode="json"))

    worker = (
        GateWorker(
            WorkerSpec(config, log_level=logging.getLogger().getEffectiveLevel()),
            on_passage=passage_to_stream,
            on_alarm=lambda alarm_id: alarm_service.notify([alarm_id]),
            on_dropped=count_dropped,
            on_rejected=lambda channel, reason: count_rejected(svc.metrics, channel, reason),
        )
        if where == "process"
        else None
    )
    svc.ingest_connected = lambda: (
        all(i.connected.is_set() for i in ingests)
        and (worker is None or worker.connected.is_set())
        and (judge_worker is None or judge_worker.ready.is_set())
    )
    gates.add_listener(passage_to_stream)
    gates.add_drop_listener(count_dropped)
    app = create_app(svc, gates=gates)
    evidence = EvidenceService.from_settings(svc.store.engine, config.evidence)
    app.state.evidence = evidence
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
    listener = config.http.operations_listener
    operations = (
        uvicorn.Server(
            uvicorn.Config(
                operations_app(app, svc),
                host=listener.host,
                port=listener.port,
                log_level="warning",
                lifespan="off",
            )
        )
        if listener is not None
        else None
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with asyncio.TaskGroup() as group:
            ingest_tasks = [
                group.create_task(each.run(), name=f"ingest-{n}") for n, each in enumerate(ingests)
            ]
            if worker is not None:
                ingest_tasks.append(group.create_task(worker.run(), name="gate-worker"))
            http_task = group.create_task(server.serve(), name="http")
            operations_task = (
                group.create_task(operations.serve(), name="operations-http")
                if operations is not None
                else None
            )
            timers = group.create_task(judge_run(), name="rule-timers")
            commands = group.create_task(publisher.run(), name="command-publisher")
            escalation = group.create_task(escalator.run_forever(), name="alarm-escalation")
            clock_task = group.create_task(clock_ahead.run_forever(), name="clock-ahead")
            checkpoints = group.create_task(svc.store.checkpoint_forever(), name="checkpoints")
            evidence_task = group.create_task(evidence.sweep_forever(), name="evidence-cleanup")
            audit_task = (
                group.create_task(
                    svc.audit_checkpoints.run_forever(svc.store.engine), name="audit-checkpoints"
                )
                if svc.audit_checkpoints is not None
                else None
            )
            telemetry_task = (
                group.create_task(telemetry.run(svc.store), name="telemetry")
                if telemetry is not None
                else None
            )
            while not server.started:  # noqa: ASYNC110 - uvicorn offers no event for this
                await asyncio.sleep(0.02)
            port = (
                server.servers[0].sockets[0].getsockname()[1]
                if server.servers
                else config.http.port
            )
            print(f"bondwatch-server listening on http://{config.http.host}:{port}/", flush=True)
            if ready is not None:  # for tests: the HTTP server and every connection are up
                while not svc.ingest_connected():  # noqa: ASYNC110 - several sources
                    await asyncio.sleep(0.05)
                ready.set()
            await stop.wait()
            log.info("shutting down")
            server.should_exit = True
            await http_task
            if operations is not None and operations_task is not None:
                operations.should_exit = True
                await operations_task
            for task in ingest_tasks:
                task.cancel()
            timers.cancel()
            commands.cancel()
            escalation.cancel()
            clock_task.cancel()
            checkpoints.cancel()
            evidence_task.cancel()
            if audit_task is not None:
                audit_task.cancel()
            if telemetry_task is not None:
                telemetry_task.cancel()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        svc.store.close()

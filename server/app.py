"""Assemble the server: store, geography, ingest, REST API and console, in one TaskGroup."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from pathlib import Path

import uvicorn
from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from contract.version import CONTRACT_VERSION
from server.api import alarms as alarms_api
from server.api import audit as audit_api
from server.api import errors
from server.api.geography import load_layers
from server.api.routes import health_router, router
from server.config import ServerConfig
from server.ingest import Ingest
from server.services import Services
from server.store import Store
from server.trips import TripTracker

log = logging.getLogger(__name__)

CONSOLE_DIR = Path(__file__).parent / "console" / "static"


def create_app(svc: Services) -> FastAPI:
    app = FastAPI(
        title="BondWatch",
        version=CONTRACT_VERSION,
        description="Customs-bonded transport monitoring: declarations, trips, alarms, gates.",
    )
    app.state.services = svc
    errors.install(app)
    app.include_router(router)
    app.include_router(health_router)
    app.include_router(alarms_api.router)  # alarms and their lifecycle
    app.include_router(audit_api.router)  # the hash-chained audit log
    app.mount("/static", StaticFiles(directory=CONSOLE_DIR), name="static")

    @app.get("/", include_in_schema=False)
    async def console() -> FileResponse:
        return FileResponse(CONSOLE_DIR / "index.html")

    return app


def build_services(config: ServerConfig) -> Services:
    store = Store.open(config.storage.url, _db_password(config))
    layers = load_layers(config.geography.routes, config.geography.zones)
    return Services(config=config, store=store, layers=layers)


def _db_password(config: ServerConfig) -> str | None:
    name = config.storage.password_env
    return os.environ.get(name) if name else None


async def serve(config: ServerConfig, ready: asyncio.Event | None = None) -> None:
    """Run until cancelled or SIGTERM/SIGINT."""
    svc = build_services(config)
    trips = TripTracker(svc.store)
    ingest = Ingest(
        config.broker,
        config.ingest,
        svc.store,
        svc.metrics,
        handlers=[trips.on_messages],
        client_id=config.broker.client_id or "bondwatch-server-1",
    )
    svc.ingest_connected = ingest.connected.is_set
    app = create_app(svc)
    server = uvicorn.Server(
        uvicorn.Config(
            app, host=config.http.host, port=config.http.port, log_level="warning", lifespan="off"
        )
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with asyncio.TaskGroup() as group:
            ingest_task = group.create_task(ingest.run(), name="ingest")
            http_task = group.create_task(server.serve(), name="http")
            while not server.started:  # noqa: ASYNC110 - uvicorn offers no event for this
                await asyncio.sleep(0.02)
            port = (
                server.servers[0].sockets[0].getsockname()[1]
                if server.servers
                else config.http.port
            )
            print(f"bondwatch-server listening on http://{config.http.host}:{port}/", flush=True)
            if ready is not None:
                ready.set()
            await stop.wait()
            log.info("shutting down")
            server.should_exit = True
            await http_task
            ingest_task.cancel()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        svc.store.close()

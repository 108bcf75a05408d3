"""Gate decisions in a process of their own, so that a truck at a barrier never waits
behind the position stream.

Measured (bench/bench_server.py, docs/telemetry-and-stream.md#benchmark): with the
passages on a connection of their own but in the server's process, a decision took
0.5–9 s under a load of positions, because positions, their store writes and the
rules hold the process's one interpreter lock, and the passage's own work — two hops
through a busy event loop and two worker threads — queues behind them. A child
process has an interpreter of its own; the operating system schedules it as soon as
a passage wakes it.

The child (`run_child`) opens the same store, loads the same geography, and runs an
`Ingest` of the passage topics only (client id `<client_id>-passages`), a
`GateService`, and a `CommandPublisher` of its own (`<client_id>-gate-commands`). It
tells the parent over a pipe when its broker connection comes and goes, and the id
of every passage it has decided and of every alarm it has changed, so that the
parent's console stream shows them. When the parent dies the pipe closes and the
child stops; when the child dies the parent logs it and starts another (the broker
keeps the passages of the persistent session in the meantime, and the store's
(node, seq) key absorbs a redelivered one).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any, Literal

from server.config import IngestSettings, ServerConfig
from server.geo import Geography

log = logging.getLogger(__name__)

EventKind = Literal["connected", "passage", "alarm"]
#: How long a stopping child may take before it is killed.
STOP_TIMEOUT_S = 5.0
RESTART_MAX_S = 30.0


@dataclass(frozen=True)
class WorkerSpec:
    """What the child needs; pickled to it (the `spawn` start method)."""

    config: ServerConfig
    #: A module-level function building the geography; None loads `config.geography`.
    geography: Callable[[], Geography] | None = None
    log_level: int = logging.INFO


def passages_client_id(config: ServerConfig) -> str:
    return f"{config.broker.client_id or 'bondwatch-server-1'}-passages"


def commands_client_id(config: ServerConfig) -> str:
    return f"{config.broker.client_id or 'bondwatch-server-1'}-gate-commands"


def passage_batches(settings: IngestSettings) -> IngestSettings:
    """Passages are few and each has a truck waiting: store each as soon as it comes
    (a batch of positions waits up to `batch_wait_ms` to fill; a passage must not)."""
    return settings.model_copy(update={"batch_wait_ms": 0})


class GateWorker:
    """The parent's side: starts the child, relays its events, restarts it if it dies."""

    def __init__(
        self,
        spec: WorkerSpec,
        on_passage: Callable[[str], None],
        on_alarm: Callable[[int], None],
    ) -> None:
        self._spec = spec
        self._on_passage = on_passage
        self._on_alarm = on_alarm
        self.connected = asyncio.Event()
        self.started = 0  # children started, for the log and the tests
        self.pid: int | None = None

    async def run(self) -> None:
        """Run the child until cancelled; a child that exits is replaced after a backoff."""
        delay = 1.0
        ctx = multiprocessing.get_context("spawn")
        while True:
            ours, theirs = ctx.Pipe(duplex=True)
            proc = ctx.Process(
                target=run_child, args=(self._spec, theirs), name="bondwatch-gates", daemon=True
            )
            proc.start()
            theirs.close()
            self.started += 1
            self.pid = proc.pid
            log.info("gate worker started (pid %s)", proc.pid)
            try:
                await self._relay(ours)
            finally:
                self.connected.clear()
                await asyncio.shield(asyncio.to_thread(_stop, proc))
                ours.close()
            log.error(
                "gate worker (pid %s) exited with code %s; starting another in %.0f s",
                proc.pid,
                proc.exitcode,
                delay,
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, RESTART_MAX_S)

    async def _relay(self, conn: Connection) -> None:
        """Hand the child's events on until its end of the pipe closes."""
        loop = asyncio.get_running_loop()
        ended: asyncio.Future[None] = loop.create_future()

        def readable() -> None:
            try:
                while conn.poll():
                    kind, value = conn.recv()
                    self._event(kind, value)
            except (EOFError, OSError):
                if not ended.done():
                    ended.set_result(None)

        loop.add_reader(conn.fileno(), readable)
        try:
            await ended
        finally:
            loop.remove_reader(conn.fileno())

    def _event(self, kind: EventKind, value: Any) -> None:
        try:
            if kind == "connected":
                if value:
                    self.connected.set()
                else:
                    self.connected.clear()
            elif kind == "passage":
                self._on_passage(str(value))
            elif kind == "alarm":
                self._on_alarm(int(value))
        except Exception:
            log.exception("gate worker event %s %r failed", kind, value)


def _stop(proc: multiprocessing.process.BaseProcess) -> None:
    if proc.is_alive():
        proc.terminate()  # SIGTERM: the child closes its connections
        proc.join(STOP_TIMEOUT_S)
    if proc.is_alive():
        log.warning("gate worker (pid %s) did not stop; killing it", proc.pid)
        proc.kill()
    proc.join()


# ---- the child ----------------------------------------------------------------------


def run_child(spec: WorkerSpec, conn: Connection) -> None:
    """The child process's entry point."""
    logging.basicConfig(
        level=spec.log_level, format="%(asctime)s %(levelname)s %(name)s[gates]: %(message)s"
    )
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C stops the parent, which stops us
    asyncio.run(_decide(spec, conn))


class _Pipe:
    """The child's end: sends from any thread; its end of file means the parent is gone."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._lock = threading.Lock()

    def send(self, kind: EventKind, value: object) -> None:
        with self._lock, contextlib.suppress(OSError):
            self._conn.send((kind, value))

    async def wait_closed(self) -> None:
        loop = asyncio.get_running_loop()
        closed: asyncio.Future[None] = loop.create_future()

        def readable() -> None:
            try:
                while self._conn.poll():
                    self._conn.recv()  # the parent sends nothing
            except (EOFError, OSError):
                if not closed.done():
                    closed.set_result(None)

        loop.add_reader(self._conn.fileno(), readable)
        try:
            await closed
        finally:
            loop.remove_reader(self._conn.fileno())


async def _decide(spec: WorkerSpec, conn: Connection) -> None:
    # Imported here: the parent needs none of this to start the child.
    from server.alarms import AlarmService
    from server.gates.commands import CommandPublisher, CommandSigner
    from server.gates.service import GateService
    from server.ingest import Ingest
    from server.metrics import Metrics
    from server.store import Store

    config = spec.config
    pipe = _Pipe(conn)
    password = os.environ.get(config.storage.password_env) if config.storage.password_env else None
    store = Store.open(config.storage.url, password)
    try:
        geography = (
            spec.geography()
            if spec.geography is not None
            else Geography.from_files(config.geography.routes, config.geography.zones)
        )
        alarms = AlarmService(store.engine)
        alarms.add_listener(lambda alarm: pipe.send("alarm", alarm.id))
        publisher_id = commands_client_id(config)
        publisher = CommandPublisher(
            config.broker.model_copy(update={"client_id": publisher_id}), publisher_id
        )
        gates = GateService(
            store,
            geography,
            config.gates,
            CommandSigner.from_file(config.signing_key_file, config.gates.command_ttl_s),
            publisher,
            alarms,
        )
        gates.add_listener(lambda passage_id: pipe.send("passage", passage_id))
        ingest_id = passages_client_id(config)
        ingest = Ingest(
            config.broker.model_copy(update={"client_id": ingest_id}),
            passage_batches(config.ingest),
            store,
            Metrics(),
            handlers=[gates.on_messages],
            client_id=ingest_id,
            passages=True,
        )
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        async with asyncio.TaskGroup() as group:
            tasks = [
                group.create_task(ingest.run(), name="passage-ingest"),
                group.create_task(publisher.run(), name="gate-commands"),
                group.create_task(_report_connection(ingest, publisher, pipe), name="status"),
            ]
            parent = group.create_task(pipe.wait_closed(), name="parent")
            tasks.append(parent)
            parent.add_done_callback(lambda _: _parent_gone(stop))
            await stop.wait()
            for task in tasks:
                task.cancel()
    finally:
        store.close()


def _parent_gone(stop: asyncio.Event) -> None:
    if not stop.is_set():
        log.info("the server process is gone; the gate worker stops")
        stop.set()


async def _report_connection(ingest: Any, publisher: Any, pipe: _Pipe) -> None:
    """Tell the parent each time both broker connections are up, or one goes down."""
    was: bool | None = None
    while True:
        now = ingest.connected.is_set() and publisher.connected.is_set()
        if now != was:
            pipe.send("connected", now)
            was = now
        await asyncio.sleep(0.1)

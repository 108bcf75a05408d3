"""Server work in child processes of its own, each with its own interpreter lock.

One server process receives, validates and stores the position stream on one core; the
gate decisions (`server.gates.worker`) and the trip rules (`server.judge_worker`) run in
children that the operating system schedules on the other. The parent and a child talk
over a duplex pipe of typed events (`server.pipe_events`), pickled. Each child builds
its components with the server's own steps (`server.assembly`).

`ChildProcess` is the parent's side: it starts the child (the `spawn` start method: a
fresh interpreter that imports only what it needs), hands each event of the child to a
callback, sends events to the child, and when the child exits logs it and starts another
after a backoff. `ParentPipe` is the child's side: it sends from any thread, and its end
of file means the parent is gone (the child then stops). A parent killed outright takes
its children with it (`contract.parent_death`: the kernel's parent-death signal).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

from contract.parent_death import die_with_parent
from server.config import ServerConfig
from server.lock_secrets import LockSecrets
from server.pipe_events import ChildEvent, ParentEvent

if TYPE_CHECKING:
    from server.assembly import GeographyFactory
    from server.geo import Geography
    from server.store import Store

log = logging.getLogger(__name__)

#: How long a stopping child may take before it is killed.
STOP_TIMEOUT_S = 5.0
RESTART_MAX_S = 30.0

EventHandler = Callable[[ChildEvent], None]


@dataclass(frozen=True)
class ChildSpec:
    """What a child needs; pickled to it (the `spawn` start method)."""

    config: ServerConfig
    #: read once by the server process (`server.assembly.load_lock_secrets`)
    lock_secrets: LockSecrets = field(repr=False)
    #: A module-level function building the geography; None loads `config.geography`.
    geography: GeographyFactory | None = None
    log_level: int = logging.INFO


class ChildProcess:
    """Starts `target(spec, connection)` in a child, relays its events, restarts it."""

    def __init__(
        self,
        name: str,
        target: Callable[[Any, Connection], None],
        spec: Any,
        on_event: EventHandler,
        on_exit: Callable[[], None] = lambda: None,
    ) -> None:
        self.name = name
        self._target = target
        self._spec = spec
        self._on_event = on_event
        self._on_exit = on_exit
        self._conn: Connection | None = None
        self._send_lock = threading.Lock()
        #: children started, for the log and the tests; the number of the latest is its
        #: generation (`send` says which one an event went to)
        self.started = 0
        self.pid: int | None = None
        self._proc: multiprocessing.process.BaseProcess | None = None

    async def run(self) -> None:
        """Run the child until cancelled; a child that exits is replaced after a backoff."""
        delay = 1.0
        ctx = multiprocessing.get_context("spawn")
        while True:
            ours, theirs = ctx.Pipe(duplex=True)
            proc = ctx.Process(
                target=_child_main,
                args=(os.getpid(), self.name, self._target, self._spec, theirs),
                name=self.name,
                daemon=True,
            )
            proc.start()
            theirs.close()
            with self._send_lock:
                self.started += 1
                self._conn = ours
            self.pid = proc.pid
            self._proc = proc
            began = time.monotonic()
            log.info("%s started (pid %s)", self.name, proc.pid)
            try:
                await self._relay(ours)
            finally:
                self._on_exit()
                # Stopped first: a sender blocked on a full pipe then fails and lets go
                # of the lock, even when the child had stopped reading.
                await asyncio.shield(asyncio.to_thread(_stop, proc, self.name))
                with self._send_lock:
                    self._conn = None
                ours.close()
            delay = restart_delay(delay, time.monotonic() - began)
            log.error(
                "%s (pid %s) exited with code %s; starting another in %.0f s",
                self.name,
                proc.pid,
                proc.exitcode,
                delay,
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, RESTART_MAX_S)

    def kill(self) -> None:
        """Kill the running child outright (SIGKILL), as one that hangs: it is replaced
        as any child that exits."""
        proc = self._proc
        if proc is not None and proc.is_alive():
            proc.kill()

    def send(self, event: ParentEvent) -> int | None:
        """Send an event to the child (blocks while its pipe is full: call it from a
        worker thread): the generation of the child it went to (`started` then), or
        None when no child is running."""
        with self._send_lock:
            if self._conn is None:
                return None
            try:
                self._conn.send(event)
            except OSError:
                return None
            return self.started

    async def _relay(self, conn: Connection) -> None:
        """Hand the child's events on until its end of the pipe closes."""
        loop = asyncio.get_running_loop()
        ended: asyncio.Future[None] = loop.create_future()

        def readable() -> None:
            try:
                while conn.poll():
                    event = conn.recv()
                    try:
                        self._on_event(event)
                    except Exception:
                        log.exception("%s event %r failed", self.name, event)
            except (EOFError, OSError):
                if not ended.done():
                    ended.set_result(None)

        loop.add_reader(conn.fileno(), readable)
        try:
            await ended
        finally:
            loop.remove_reader(conn.fileno())


def restart_delay(backoff: float, ran_s: float) -> float:
    """The wait before starting a child again after one that ran `ran_s` seconds: the
    backoff (1 s, doubled after each restart up to `RESTART_MAX_S`) for a child that
    keeps dying, and 1 s again for one that had run a while (`RESTART_MAX_S` or more)."""
    return 1.0 if ran_s >= RESTART_MAX_S else backoff


def _child_main(
    parent_pid: int,
    name: str,
    target: Callable[[Any, Connection], None],
    spec: Any,
    conn: Connection,
) -> None:
    """The child's first steps: it dies with the server process, even a killed one, and
    `ps` shows what it is."""
    die_with_parent(parent_pid)
    set_process_name(name)
    target(spec, conn)


def process_name(name: str) -> str:
    """What `ps -o comm` shows for a child named `name`: "bondwatch-judge-2" →
    "bw-judge-2" (the kernel keeps 15 bytes)."""
    return f"bw-{name.removeprefix('bondwatch-')}"[:15]


def set_process_name(name: str) -> None:
    """Name this process for `ps`, `top` and `/proc/PID/comm` (`process_name`)."""
    # Not Linux: the interpreter's name stays.
    with contextlib.suppress(OSError), open("/proc/self/comm", "w", encoding="ascii") as comm:
        comm.write(process_name(name))


def _stop(proc: multiprocessing.process.BaseProcess, name: str) -> None:
    if proc.is_alive():
        proc.terminate()  # SIGTERM: the child closes its connections
        proc.join(STOP_TIMEOUT_S)
    if proc.is_alive():
        log.warning("%s (pid %s) did not stop; killing it", name, proc.pid)
        proc.kill()
    proc.join()


# ---- the child's side ------------------------------------------------------------------


def child_logging(level: int, tag: str) -> None:
    """The child's log lines, tagged; a Ctrl-C stops the parent, which stops the child."""
    logging.basicConfig(
        level=level, format=f"%(asctime)s %(levelname)s %(name)s[{tag}]: %(message)s"
    )
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def open_world(spec: ChildSpec) -> tuple[Store, Geography]:
    """The server's own store and geography, opened in a child by the server's steps
    (`server.assembly`). The caller closes the store."""
    from server import assembly

    # The server process checkpoints SQLite's log (its ingest's commits, and
    # `checkpoint_forever`): a gate decision's commit must not do that work.
    store = assembly.open_store(spec.config, checkpoints=False)
    try:
        world = assembly.load_geography(spec.config, spec.geography)
    except BaseException:
        store.close()
        raise
    return store, world


def set_priority(nice: int, name: str) -> None:
    """Run this process at `nice` (below 0: before the rest of the machine, above: after
    it) when allowed; otherwise say once that it keeps the priority it has."""
    try:
        os.setpriority(os.PRIO_PROCESS, 0, nice)
    except PermissionError:
        log.info("the %s keeps its CPU priority (nice %d needs root or CAP_SYS_NICE)", name, nice)


class ParentPipe:
    """The child's end: sends from any thread; receives the parent's events."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._lock = threading.Lock()

    def send(self, event: ChildEvent) -> None:
        with self._lock, contextlib.suppress(OSError):
            self._conn.send(event)

    def receive(self) -> ParentEvent | None:
        """The parent's next event (blocking), or None once the parent is gone."""
        try:
            event: ParentEvent = self._conn.recv()
        except (EOFError, OSError):
            return None
        return event

    async def wait_closed(self) -> None:
        """Until the parent is gone (for a child the parent sends nothing)."""
        loop = asyncio.get_running_loop()
        closed: asyncio.Future[None] = loop.create_future()

        def readable() -> None:
            try:
                while self._conn.poll():
                    self._conn.recv()
            except (EOFError, OSError):
                if not closed.done():
                    closed.set_result(None)

        loop.add_reader(self._conn.fileno(), readable)
        try:
            await closed
        finally:
            loop.remove_reader(self._conn.fileno())


def stop_when_parent_gone(task: asyncio.Task[Any], stop: asyncio.Event, name: str) -> None:
    """Set `stop` once `task` (waiting for the parent's end of the pipe) has ended."""

    def gone(_: asyncio.Task[Any]) -> None:
        if not stop.is_set():
            log.info("the server process is gone; the %s stops", name)
            stop.set()

    task.add_done_callback(gone)

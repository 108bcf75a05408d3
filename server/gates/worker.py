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
import logging
import signal
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING

from server.child import (
    ChildProcess,
    ChildSpec,
    ParentPipe,
    child_logging,
    open_world,
    set_priority,
    stop_when_parent_gone,
)
from server.pipe_events import (
    AlarmChanged,
    ChildEvent,
    Connected,
    PassageDecided,
    PassageDropped,
    Rejected,
)

if TYPE_CHECKING:
    from server.gates.commands import CommandPublisher
    from server.ingest import Ingest

log = logging.getLogger(__name__)

#: The gate worker's CPU priority when the server may raise it (root, or CAP_SYS_NICE as
#: the systemd unit grants): on a saturated machine a truck at a barrier comes first.
GATE_NICE = -5


#: What the gate worker needs (the server's configuration and geography).
WorkerSpec = ChildSpec


class GateWorker:
    """The parent's side: starts the child, relays its events, restarts it if it dies."""

    def __init__(
        self,
        spec: WorkerSpec,
        on_passage: Callable[[str], None],
        on_alarm: Callable[[int], None],
        on_dropped: Callable[[str], None] | None = None,
        on_rejected: Callable[[str, str], None] | None = None,
    ) -> None:
        """`on_dropped(node_id)`: a passage from a node that is not a configured gate
        was dropped unstored (`GateService.store_passages`). `on_rejected(channel,
        reason)`: the child's ingest refused a message (for the parent's /metrics)."""
        self._on_rejected = on_rejected
        self._on_passage = on_passage
        self._on_alarm = on_alarm
        self._on_dropped = on_dropped
        self.connected = asyncio.Event()
        self._child = ChildProcess(
            "bondwatch-gates", run_child, spec, self._event, on_exit=self.connected.clear
        )

    @property
    def started(self) -> int:
        """Children started, for the log and the tests."""
        return self._child.started

    @property
    def pid(self) -> int | None:
        return self._child.pid

    async def run(self) -> None:
        """Run the child until cancelled; a child that exits is replaced after a backoff."""
        await self._child.run()

    def _event(self, event: ChildEvent) -> None:
        match event:
            case Connected(up=True):
                self.connected.set()
            case Connected(up=False):
                self.connected.clear()
            case PassageDecided(passage_id):
                self._on_passage(passage_id)
            case AlarmChanged(alarm_id):
                self._on_alarm(alarm_id)
            case PassageDropped(node_id):
                if self._on_dropped is not None:
                    self._on_dropped(node_id)
            case Rejected(channel, reason):
                if self._on_rejected is not None:
                    self._on_rejected(channel, reason)
            case _:
                log.warning("gate worker: unexpected event %r", event)


# ---- the child ----------------------------------------------------------------------


def run_child(spec: WorkerSpec, conn: Connection) -> None:
    """The child process's entry point."""
    child_logging(spec.log_level, "gates")
    set_priority(GATE_NICE, "gate worker")
    asyncio.run(_decide(spec, conn))


async def _decide(spec: WorkerSpec, conn: Connection) -> None:
    # Imported here: the parent needs none of this to start the child.
    from server import assembly
    from server.alarms.clock_ahead import ClockAheadAlarms
    from server.metrics import Metrics

    config = spec.config
    pipe = ParentPipe(conn)
    store, geography = open_world(spec)
    try:
        alarms = assembly.alarm_service(store, lambda alarm: pipe.send(AlarmChanged(alarm.id)))
        publisher = assembly.command_publisher(config, "gate_commands")
        gates = assembly.gate_service(
            config, store, geography, publisher, alarms, spec.lock_secrets, inline=True
        )
        gates.add_listener(lambda passage_id: pipe.send(PassageDecided(passage_id)))
        gates.add_drop_listener(lambda node_id: pipe.send(PassageDropped(node_id)))
        clock_ahead = ClockAheadAlarms(store, alarms)
        ingest = assembly.ingest(
            config,
            store,
            Metrics(),
            handlers=[gates.on_messages, clock_ahead.on_messages],
            on_rejected=[
                clock_ahead.on_rejected,  # DEVICE_CLOCK_AHEAD of gate nodes
                lambda r: pipe.send(Rejected(r.channel or "unknown", r.reason)),
            ],
            passages=True,
            writer=gates.store_passages,  # a passage's row and decision: one transaction
        )
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        async with asyncio.TaskGroup() as group:
            tasks = [
                group.create_task(ingest.run(), name="passage-ingest"),
                group.create_task(publisher.run(), name="gate-commands"),
                group.create_task(clock_ahead.run_forever(), name="clock-ahead"),
                group.create_task(_report_connection(ingest, publisher, pipe), name="status"),
            ]
            parent = group.create_task(pipe.wait_closed(), name="parent")
            tasks.append(parent)
            stop_when_parent_gone(parent, stop, "gate worker")
            await stop.wait()
            for task in tasks:
                task.cancel()
    finally:
        store.close()


async def _report_connection(ingest: Ingest, publisher: CommandPublisher, pipe: ParentPipe) -> None:
    """Tell the parent each time both broker connections are up, or one goes down."""
    was: bool | None = None
    while True:
        now = ingest.connected.is_set() and publisher.connected.is_set()
        if now != was:
            pipe.send(Connected(now))
            was = now
        await asyncio.sleep(0.1)

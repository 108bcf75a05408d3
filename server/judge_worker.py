"""The trip rules in a process of their own, beside the one that takes the position stream.

Measured (`bench/bench_server.py`, py-spy, 2 cores): at 8,000 positions/s the judge —
each trip's rules over 10,000 routes and zones, the trips looked up, the alarms written
— was a third of the server process's interpreter time, on the same core as receiving,
validating and storing. In a child process it has an interpreter and a core of its own.

With `ingest.judge_workers` above 1, several children share the rules
(`JudgeWorkers`): each vehicle's trips are judged by one of them, chosen from its id
(`server.judge_order.judge_part`), so every message of a vehicle goes to the same child
and is judged in fix-time order as on one worker; a child's timers follow only its
vehicles' trips. A child that dies is replaced while the others go on.

A child that hangs is killed and replaced the same way. It says every second that it is
alive (`Alive`): while it waits for work and its timers run, and while its judge gets
on with it (its progress — vehicles, stored messages, timers — moved since the last
beat). One stuck in a step (a lock never granted, a loop, a stopped process, timers
that no longer run) falls silent, and after
`ingest.judge_stall_s` the parent kills it. Meanwhile an arrival of one of its trucks
that it has not judged is held `judging` (docs/gates.md#judged-first). A long rebuild
from the store is progress, not a hang.

The parent hands each stored batch of the messages the rules look at to the child, as
(channel, stored JSON, received at), over a pipe (`JudgeWorker.on_messages`, one of the
ingest's handlers); when the child falls behind, the batches that came meanwhile are
judged as one step (`server.judge_inbox`), and once a step's worth waits the pipe fills
and the ingest waits for it. The child decodes the batch, judges it
(`server.judge.Judge`), applies the effects to the alarms in the store, runs the rule
timers (silence, time limits), and tells the parent the id of every alarm it changed
(for the console stream) and how many messages it judged.

Nothing is lost when the child dies: every message it is sent was stored first, and a
new child rebuilds each trip in transit from the store — when its vehicle is next heard
from, or at its first timer tick (`Judge._follow_trips`) — so a batch that finds no
child running is left to the store for the same reason. The alarm sink ignores effects
it has already applied.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection
from typing import Final

from contract.log_throttle import LogThrottle, and_more
from server.child import (
    ChildProcess,
    ChildSpec,
    ParentPipe,
    child_logging,
    open_world,
    set_priority,
    stop_when_parent_gone,
)
from server.judge import Judge
from server.judge_inbox import Inbox
from server.judge_order import SEQUENCED_CHANNELS, judge_part
from server.pipe_events import (
    AlarmChanged,
    Alive,
    BadRows,
    Batch,
    ChildEvent,
    Judged,
    Ready,
    Wire,
)
from server.store.database import IncomingMessage

log = logging.getLogger(__name__)

#: How often a child says it is alive.
BEAT_S: Final = 1.0


@dataclass(frozen=True)
class JudgeSpec(ChildSpec):
    """What the child needs; pickled to it (the `spawn` start method)."""

    tick_s: float = 5.0
    #: The rules yield the CPU to gate decisions and to the broker when the machine is
    #: saturated (they catch up from the pipe; the ingest waits when it is full).
    nice: int = 10
    #: This child judges the vehicles whose `judge_part` is `part`, of `parts`.
    part: int = 0
    parts: int = 1
    #: A child silent this long (no `Alive`, no other event) hangs: it is killed.
    stall_s: float = 60.0

    @property
    def name(self) -> str:
        """The child's process name: "bondwatch-judge", or "bondwatch-judge-2" for the
        second of several."""
        return "bondwatch-judge" if self.parts == 1 else f"bondwatch-judge-{self.part + 1}"


class JudgeWorker:
    """The parent's side of one child: sends the batches, relays the child's alarms,
    restarts it."""

    def __init__(
        self,
        spec: JudgeSpec,
        on_alarm: Callable[[int], None],
        on_judged: Callable[[int], None] = lambda _: None,
        on_bad_rows: Callable[[int], None] = lambda _: None,
        on_pending: Callable[[int], None] = lambda _: None,
        on_ready: Callable[[bool], None] = lambda _: None,
        sender: Executor | None = None,
        on_stalled: Callable[[], None] = lambda: None,
    ) -> None:
        """`on_bad_rows`: how many stored messages of a batch the child could not decode
        (it logs them and judges the rest). `on_pending`: how many messages are handed to
        the child and not judged yet, each time that changes (the judge's lag).
        `on_ready`: the child is up (True) or gone (False). `sender`: the threads that
        send the batches (they block while the pipe is full); None: the event loop's.
        `on_stalled`: a child that hung is being killed."""
        self._on_alarm = on_alarm
        self._on_judged = on_judged
        self._on_bad_rows = on_bad_rows
        self._on_pending = on_pending
        self._on_ready = on_ready
        self._on_stalled = on_stalled
        self._sender = sender
        self._stall_s = spec.stall_s
        self._heard = time.monotonic()  # the running child's last event
        self.stalled = 0  # children killed because they hung
        self.ready = asyncio.Event()  # the child has its geography and takes batches
        self.judged = 0  # messages judged by the children, for the metrics and the bench
        self.sent = 0  # messages handed to the children
        self._left = 0  # messages sent while no child ran, since the last log line
        #: By the generation of the child they were handed to (`ChildProcess.send`):
        #: messages not judged yet. A child's count goes with it when it exits (what it
        #: had not judged is left to the store), so a batch handed to the next child
        #: before it was ready is still counted until it is judged.
        self._unjudged: dict[int, int] = {}
        self._ended = 0  # the generation of the last child that exited
        self.name = spec.name
        self._child = ChildProcess(spec.name, run_child, spec, self._event, on_exit=self._exited)

    @property
    def pid(self) -> int | None:
        return self._child.pid

    async def run(self) -> None:
        """Run the child until cancelled; a child that exits, or hangs, is replaced after
        a backoff."""
        watchdog = asyncio.create_task(self._watch(), name=f"{self.name}-watchdog")
        try:
            await self._child.run()
        finally:
            watchdog.cancel()

    async def _watch(self) -> None:
        """Kill a ready child that has said nothing for `stall_s`."""
        while True:
            await asyncio.sleep(min(self._stall_s / 4, BEAT_S * 5))
            silent = time.monotonic() - self._heard
            if not self.ready.is_set() or silent <= self._stall_s:
                continue
            self.stalled += 1
            log.error(
                "%s (pid %s) has been silent for %.0f s: it hangs; killing it (another "
                "takes its trips up from the store)",
                self.name,
                self.pid,
                silent,
            )
            self._heard = time.monotonic()
            self._on_stalled()
            self._child.kill()

    async def on_messages(self, batch: Sequence[IncomingMessage]) -> None:
        """The ingest handler: the channels of a stored batch that trucks number, to
        the child."""
        wire = [(m.channel, m.raw, m.received_at) for m in batch if m.channel in SEQUENCED_CHANNELS]
        if not wire:
            return
        count = len(wire)
        # Counted before the child can answer that it judged them, against the child a
        # send now reaches; moved if another took it meanwhile.
        expected = self._child.started
        self._count(expected, count)
        loop = asyncio.get_running_loop()
        went_to = await loop.run_in_executor(self._sender, self._child.send, Batch(wire))
        if went_to != expected:
            self._count(expected, -count)
            if went_to is not None:
                self._count(went_to, count)
        if went_to is not None and went_to > self._ended:
            self.sent += count
            self._on_pending(self.pending)
            if self._left:
                log.info("judge worker back: %d messages were left to the store", self._left)
                self._left = 0
            return
        if not self._left:
            log.warning(
                "no judge worker running: messages are left to the store, and the next "
                "worker judges them again from there"
            )
        self._left += count

    @property
    def pending(self) -> int:
        """Messages handed to the running child and not judged yet."""
        return sum(self._unjudged.values())

    def _count(self, generation: int, count: int) -> None:
        """`count` more (or fewer) messages handed to child `generation`, not judged; a
        child that has exited has none."""
        if generation <= self._ended:
            return
        left = self._unjudged.get(generation, 0) + count
        if left:
            self._unjudged[generation] = left
        else:
            self._unjudged.pop(generation, None)

    def _exited(self) -> None:
        # What the child had not judged, the next one judges from the store.
        self._ended = self._child.started
        self._unjudged.pop(self._ended, None)
        self.ready.clear()
        self._on_pending(self.pending)
        self._on_ready(False)

    def _event(self, event: ChildEvent) -> None:
        self._heard = time.monotonic()
        match event:
            case Alive():
                pass
            case Ready():
                self.ready.set()
                self._on_ready(True)
            case AlarmChanged(alarm_id):
                self._on_alarm(alarm_id)
            case Judged(count):
                self.judged += count
                self._count(self._child.started, -count)  # events come from the running child
                self._on_judged(count)
                self._on_pending(self.pending)
            case BadRows(count):
                self._on_bad_rows(count)
            case _:
                log.warning("judge worker: unexpected event %r", event)


class JudgeWorkers:
    """The parent's side of `count` children (`ingest.judge_workers`), each judging the
    vehicles of its part (`judge_part`); one child is the plain `JudgeWorker`."""

    def __init__(
        self,
        spec: JudgeSpec,
        count: int,
        on_alarm: Callable[[int], None],
        on_judged: Callable[[int], None] = lambda _: None,
        on_bad_rows: Callable[[int], None] = lambda _: None,
        on_pending: Callable[[int], None] = lambda _: None,
        on_down: Callable[[int], None] = lambda _: None,
        on_stalled: Callable[[], None] = lambda: None,
    ) -> None:
        """`on_pending`: the messages handed to the children and not judged yet, all
        together; `on_down`: how many children are not running or not ready yet, each
        time that changes; `on_stalled`: a child that hung is being killed."""
        if count < 1:
            raise ValueError(f"judge workers: {count}; at least one")
        self._on_pending = on_pending
        self._on_down = on_down
        # Each child's sends block while its pipe is full: a thread each, so that a
        # child that lags holds up neither the others' sends nor the event loop's pool.
        self._sender = ThreadPoolExecutor(count, thread_name_prefix="judge-send")
        self.workers = [
            JudgeWorker(
                replace(spec, part=part, parts=count),
                on_alarm,
                on_judged,
                on_bad_rows,
                lambda _: self._on_pending(self.pending),
                lambda _: self._on_down(self.down),
                sender=self._sender,
                on_stalled=on_stalled,
            )
            for part in range(count)
        ]

    @property
    def pids(self) -> list[int | None]:
        return [worker.pid for worker in self.workers]

    @property
    def judged(self) -> int:
        return sum(worker.judged for worker in self.workers)

    @property
    def sent(self) -> int:
        return sum(worker.sent for worker in self.workers)

    @property
    def pending(self) -> int:
        """Messages handed to the children and not judged yet."""
        return sum(worker.pending for worker in self.workers)

    @property
    def down(self) -> int:
        """Children not running, or not ready yet."""
        return sum(not worker.ready.is_set() for worker in self.workers)

    def is_ready(self) -> bool:
        """Every child has its geography and takes batches."""
        return not self.down

    async def wait_ready(self) -> None:
        for worker in self.workers:
            await worker.ready.wait()

    async def run(self) -> None:
        """Run the children until cancelled; each that exits is replaced."""
        self._on_down(self.down)
        try:
            async with asyncio.TaskGroup() as group:
                for worker in self.workers:
                    group.create_task(worker.run(), name=worker.name)
        finally:
            self._sender.shutdown(wait=False)

    async def on_messages(self, batch: Sequence[IncomingMessage]) -> None:
        """The ingest handler: each vehicle's messages of a stored batch to its child,
        the children's shares sent at once."""
        workers = self.workers
        if len(workers) == 1:
            await workers[0].on_messages(batch)
            return
        shares: list[list[IncomingMessage]] = [[] for _ in workers]
        parts: dict[str, int] = {}
        for message in batch:
            node_id = message.message.node_id
            part = parts.get(node_id)
            if part is None:
                part = parts[node_id] = judge_part(node_id, len(workers))
            shares[part].append(message)
        await asyncio.gather(
            *(
                worker.on_messages(share)
                for worker, share in zip(workers, shares, strict=True)
                if share
            )
        )


# ---- the child ----------------------------------------------------------------------


def run_child(spec: JudgeSpec, conn: Connection) -> None:
    """The child process's entry point."""
    child_logging(spec.log_level, spec.name.removeprefix("bondwatch-"))
    set_priority(spec.nice, "judge worker")
    asyncio.run(_serve(spec, conn))


async def _serve(spec: JudgeSpec, conn: Connection) -> None:
    # Imported here: the parent needs none of this to start the child.
    from server import assembly

    pipe = ParentPipe(conn)
    store, geography = open_world(spec)
    try:
        alarms = assembly.alarm_service(store, lambda alarm: pipe.send(AlarmChanged(alarm.id)))
        judge = assembly.judge(
            spec.config, store, geography, alarms, spec.lock_secrets, owns=_owner(spec)
        )
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        parent: asyncio.Future[None] = loop.create_future()
        # Threads of their own, not the event loop's pool: the reader blocks in the
        # pipe's recv, and a daemon thread does not hold the process up when it stops.
        inbox = Inbox(pipe, judge.shortest_silence / 2)
        threading.Thread(target=inbox.fill, name="judge-inbox", daemon=True).start()
        threading.Thread(
            target=_judge, args=(inbox, pipe, judge, loop, parent), name="judge", daemon=True
        ).start()
        threading.Thread(
            target=_beat, args=(pipe, judge, spec.stall_s), name="heartbeat", daemon=True
        ).start()
        pipe.send(Ready())
        async with asyncio.TaskGroup() as group:
            timers = group.create_task(judge.tick_forever(spec.tick_s), name="rule-timers")
            watcher = group.create_task(_wait(parent), name="parent")
            stop_when_parent_gone(watcher, stop, "judge worker")
            await stop.wait()
            timers.cancel()
            watcher.cancel()
    finally:
        store.close()


def _owner(spec: JudgeSpec) -> Callable[[str], bool] | None:
    """Whether the child judges a vehicle's trips; None: it judges every vehicle's."""
    if spec.parts == 1:
        return None
    return lambda vehicle_id: judge_part(vehicle_id, spec.parts) == spec.part


async def _wait(future: asyncio.Future[None]) -> None:
    await future


def _beat(pipe: ParentPipe, judge: Judge, stall_s: float) -> None:
    """Every `BEAT_S`, `Alive` — unless the judge has been busy since the last beat
    without getting any further, or, idle, has not run its timers for `stall_s` (the
    loop that runs them is stuck)."""
    last = -1
    while True:
        time.sleep(BEAT_S)
        progress = judge.progress
        busy = judge.busy
        if (busy and progress != last) or (not busy and time.monotonic() - judge.ticked <= stall_s):
            pipe.send(Alive())
        last = progress


def _judge(
    inbox: Inbox,
    pipe: ParentPipe,
    judge: Judge,
    loop: asyncio.AbstractEventLoop,
    gone: asyncio.Future[None],
) -> None:
    """Judge the parent's batches — those that came while the judge was busy as one step
    (`server.judge_inbox`) — until the parent is gone."""
    while (wire := inbox.take()) is not None:
        batch = decode_rows(wire)
        if len(batch) < len(wire):
            pipe.send(BadRows(len(wire) - len(batch)))
        try:
            judge.judge_batch(batch)
        except Exception:
            log.exception("judging a batch of %d failed", len(batch))
        pipe.send(Judged(len(wire)))
    loop.call_soon_threadsafe(_settle, gone)


#: A stored row that does not decode is logged once a minute per channel and reason.
_bad_row_log = LogThrottle()


def decode_rows(wire: Sequence[Wire]) -> list[IncomingMessage]:
    """The messages of `wire` that decode; each that does not is logged (at most once a
    minute per channel and reason) and left out, whatever fails: one bad row never
    stops the judge."""
    from contract.payloads import PayloadError, decode_stored

    batch: list[IncomingMessage] = []
    for item in wire:
        try:  # stored after validation: a refusal here is a bug (or an edited row)
            channel, raw, received_at = item
            message = decode_stored(channel, raw)
        except PayloadError as err:
            left_out = _bad_row_log.admit((str(item[0])[:32], err.reason))
            if left_out is not None:
                log.error(
                    "a stored %s message no longer decodes (%s): %s%s",
                    item[0],
                    err.reason,
                    str(err)[:300],
                    and_more(left_out, _bad_row_log.window_s),
                )
            continue
        except Exception:
            left_out = _bad_row_log.admit(("?", "internal"))
            if left_out is not None:
                log.exception("a stored message cannot be read%s", and_more(left_out, 60))
            continue
        batch.append(IncomingMessage(channel, message, raw, received_at))
    return batch


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)

"""The judge worker (server.judge_worker): the trip rules in a child process, fed the
stored batches, its alarms relayed to the server; a killed child replaced, and the next
one judges again from the store what it never saw."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import threading
import time
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from contract.ids import utc_now
from contract.payloads import Position
from server import judge_worker
from server.alarms import AlarmService
from server.alarms.service import AlarmQuery
from server.assembly import load_lock_secrets
from server.child import RESTART_MAX_S, restart_delay, set_priority
from server.config import ServerConfig, StorageSettings
from server.geo import Geography
from server.judge_order import judge_part
from server.judge_worker import JudgeSpec, JudgeWorker, JudgeWorkers
from server.pipe_events import Alive
from server.store import Store
from server.store.database import IncomingMessage
from tests.server.conftest import declaration, demo_geography
from tests.server.gates.test_broker import wait_until

VEHICLE = "TRK-1"
#: Fixes a second apart inside a forbidden zone: longer than the persistence of the
#: declaration's credit class (advanced: 30 s).
INSIDE = 40


def _config(tmp_path: Path) -> ServerConfig:
    return ServerConfig(
        storage=StorageSettings(url=f"sqlite:///{tmp_path / 'store.db'}"),
        geography=demo_geography(),
    )


def _forbidden_point() -> tuple[float, float]:
    settings = demo_geography()
    geo = Geography.from_files(settings.routes, settings.zones)
    zone = next(z for z in geo.zones if z.kind == "forbidden")
    point = zone.polygon.representative_point()
    return point.x, point.y


def _fixes(
    lon: float, lat: float, first: int, start: datetime, count: int, vehicle: str = VEHICLE
) -> list[Position]:
    return [
        Position(
            node_id=vehicle,
            seq=first + n,
            ts=start + timedelta(seconds=n),
            lat=lat,
            lon=lon,
            speed_kmh=30.0,
            course_deg=90.0,
            fix="3d",
            sats=12,
            hdop=0.8,
            systems=["GPS", "BDS"],
        )
        for n in range(count)
    ]


def _stored(store: Store, fixes: list[Position]) -> list[IncomingMessage]:
    """As the ingest hands them on: stored first."""
    batch = [
        IncomingMessage("position", f, f.to_json().decode(), f.ts + timedelta(milliseconds=300))
        for f in fixes
    ]
    return store.store_messages(batch)


class Relayed:
    def __init__(self) -> None:
        self.alarms: list[int] = []
        self.judged: list[int] = []


@contextlib.asynccontextmanager
async def running(spec: JudgeSpec) -> AsyncIterator[tuple[JudgeWorker, Relayed]]:
    relayed = Relayed()
    worker = JudgeWorker(spec, relayed.alarms.append, relayed.judged.append)
    task = asyncio.create_task(worker.run())
    try:
        await asyncio.wait_for(worker.ready.wait(), 60)
        yield worker, relayed
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _trip_in_transit(config: ServerConfig) -> tuple[Store, datetime]:
    """The store with TRK-1's trip started two minutes ago; the start."""
    store = Store.open(config.storage.url)
    start = utc_now() - timedelta(seconds=120)
    store.create_declaration(declaration(), start - timedelta(minutes=5))
    store.start_trip("D-0001", start)
    return store, start


def _alarm_types(store: Store, ids: list[int]) -> list[str]:
    service = AlarmService(store.engine)
    return [a.type for a in (service.get(i, history=False) for i in ids) if a is not None]


@pytest.mark.timeout(120)
async def test_batches_are_judged_in_a_child_and_its_alarms_relayed(tmp_path: Path) -> None:
    config = _config(tmp_path)
    store, start = _trip_in_transit(config)
    lon, lat = _forbidden_point()
    async with running(JudgeSpec(config, load_lock_secrets(config))) as (worker, relayed):
        assert worker.pid is not None and worker.pid != os.getpid()
        assert os.getpriority(os.PRIO_PROCESS, worker.pid) == 10  # yields to gate decisions
        await worker.on_messages(
            _stored(store, _fixes(lon, lat, 1, start + timedelta(seconds=1), INSIDE))
        )
        await wait_until(lambda: sum(relayed.judged) == INSIDE and bool(relayed.alarms), 20)
        assert worker.judged == INSIDE
        assert _alarm_types(store, relayed.alarms) == ["FORBIDDEN_ZONE"]
        # still inside: the one alarm goes on, no second one
        await worker.on_messages(
            _stored(store, _fixes(lon, lat, INSIDE + 1, start + timedelta(seconds=INSIDE + 1), 2))
        )
        await wait_until(lambda: sum(relayed.judged) == INSIDE + 2, 20)
    alarms, total = AlarmService(store.engine).find(AlarmQuery(state="active"))
    assert total == 1
    assert [(a.type, a.vehicle_id, a.count) for a in alarms] == [("FORBIDDEN_ZONE", VEHICLE, 1)]
    store.close()


@pytest.mark.timeout(120)
async def test_a_killed_child_is_replaced_and_judges_again_from_the_store(
    tmp_path: Path,
) -> None:
    config = _config(tmp_path)
    store, start = _trip_in_transit(config)
    lon, lat = _forbidden_point()
    async with running(JudgeSpec(config, load_lock_secrets(config), tick_s=0.2)) as (
        worker,
        relayed,
    ):
        first = worker.pid
        assert first is not None
        os.kill(first, signal.SIGKILL)
        await wait_until(lambda: not worker.ready.is_set(), 10)  # the parent noticed
        # stored while no child runs: left to the store
        await worker.on_messages(
            _stored(store, _fixes(lon, lat, 1, start + timedelta(seconds=1), INSIDE))
        )
        assert relayed.judged == []
        await asyncio.wait_for(worker.ready.wait(), 60)
        assert worker.pid not in (None, first)
        # the new child takes up the trip at its first tick and judges the stored fixes
        await wait_until(lambda: bool(relayed.alarms), 20)
    assert _alarm_types(store, relayed.alarms) == ["FORBIDDEN_ZONE"]
    store.close()


@pytest.mark.timeout(180)
async def test_batches_handed_to_a_child_before_it_is_ready_are_counted_until_judged(
    tmp_path: Path,
) -> None:
    """The lag (`pending`) counts a batch sent to a child still loading its geography —
    at the start, and to the one that replaces a killed child — until it is judged; what
    the killed child had not judged leaves the count (it is left to the store)."""
    config = _config(tmp_path)
    store, start = _trip_in_transit(config)
    relayed = Relayed()
    states: list[bool] = []
    worker = JudgeWorker(
        JudgeSpec(config, load_lock_secrets(config)),
        relayed.alarms.append,
        relayed.judged.append,
        on_ready=states.append,
    )
    task = asyncio.create_task(worker.run())
    try:
        await wait_until(lambda: worker.pid is not None, 20)
        assert not worker.ready.is_set()
        await worker.on_messages(_stored_inside(store, start, 1, 10))
        assert worker.pending == 10
        await wait_until(lambda: worker.ready.is_set() and worker.judged == 10, 60)
        assert worker.pending == 0
        # Killed with a batch unjudged: the count goes with it.
        first = worker.pid
        assert first is not None
        os.kill(first, signal.SIGSTOP)  # it takes the batch and judges nothing
        await worker.on_messages(_stored_inside(store, start, 11, 5))
        assert worker.pending == 5
        os.kill(first, signal.SIGKILL)
        await wait_until(lambda: not worker.ready.is_set(), 10)
        assert worker.pending == 0
        # The next child, started and not ready yet, is handed a batch.
        await wait_until(lambda: worker.pid not in (None, first), 20)
        assert not worker.ready.is_set()
        await worker.on_messages(_stored_inside(store, start, 16, 4))
        assert worker.pending == 4
        await wait_until(lambda: worker.ready.is_set() and worker.judged == 14, 60)
        assert worker.pending == 0
        assert states == [True, False, True]
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    store.close()


@pytest.mark.timeout(180)
async def test_a_child_that_hangs_is_killed_and_replaced(tmp_path: Path) -> None:
    """A stopped child (SIGSTOP: stuck as a process that hangs) says nothing: after
    `stall_s` the parent kills it, and the next one judges what it had been handed."""
    config = _config(tmp_path)
    store, start = _trip_in_transit(config)
    stalled: list[int] = []
    spec = JudgeSpec(config, load_lock_secrets(config), tick_s=0.5, stall_s=4.0)
    relayed = Relayed()
    worker = JudgeWorker(
        spec, relayed.alarms.append, relayed.judged.append, on_stalled=lambda: stalled.append(1)
    )
    task = asyncio.create_task(worker.run())
    try:
        await asyncio.wait_for(worker.ready.wait(), 60)
        await asyncio.sleep(spec.stall_s + 2)  # idle, beating: left alone
        assert worker.stalled == 0 and worker.pid is not None
        hung = worker.pid
        os.kill(hung, signal.SIGSTOP)
        await worker.on_messages(_stored_inside(store, start, 1, INSIDE))
        await wait_until(lambda: worker.stalled == 1, 30)
        assert stalled == [1]
        await wait_until(lambda: worker.pid not in (None, hung) and worker.ready.is_set(), 60)
        with pytest.raises(ProcessLookupError):
            os.kill(hung, 0)  # killed, and reaped
        # the new child takes the trip up from the store: the batch the hung one held
        await wait_until(lambda: bool(relayed.alarms), 30)
        assert worker.stalled == 1
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert _alarm_types(store, relayed.alarms) == ["FORBIDDEN_ZONE"]
    store.close()


class Busy:
    """A judge as the heartbeat sees it."""

    def __init__(self) -> None:
        self.progress = 0
        self.busy = False
        self.ticked = time.monotonic()


class Beats:
    def __init__(self) -> None:
        self.sent: list[object] = []

    def send(self, event: object) -> None:
        self.sent.append(event)


def test_the_heartbeat_stops_only_while_the_judge_is_stuck(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Waiting for work, its timers running, or busy and getting on (a long rebuild from
    the store): alive. Busy without a step forward since the last beat, or idle with
    timers that no longer run: silent."""
    monkeypatch.setattr(judge_worker, "BEAT_S", 0.02)
    stall_s = 5.0
    judge, pipe = Busy(), Beats()
    threading.Thread(target=judge_worker._beat, args=(pipe, judge, stall_s), daemon=True).start()

    def beats_in(seconds: float) -> int:
        before = len(pipe.sent)
        time.sleep(seconds)
        return len(pipe.sent) - before

    def falls_silent() -> bool:
        """No beat for 0.3 s (15 beats) within 10 s: the one that saw the last step may
        come late on a loaded machine."""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if beats_in(0.3) == 0:
                return True
        return False

    assert beats_in(0.3) >= 5  # idle
    judge.busy = True
    stop = threading.Event()

    def getting_on() -> None:
        while not stop.is_set():
            judge.progress += 1
            time.sleep(0.005)

    runner = threading.Thread(target=getting_on, daemon=True)
    runner.start()
    assert beats_in(0.3) >= 5  # busy, and moving
    stop.set()
    runner.join()
    assert falls_silent()  # busy, stuck
    judge.busy = False
    judge.ticked = time.monotonic()
    assert beats_in(0.3) >= 5  # idle again, its timers running
    judge.ticked = time.monotonic() - stall_s - 1
    assert falls_silent()  # idle, and its timers stopped
    assert all(isinstance(event, Alive) for event in pipe.sent)


def _stored_inside(store: Store, start: datetime, first: int, count: int) -> list[IncomingMessage]:
    """Fixes `first` … of TRK-1 in the forbidden zone, a second apart from `start` +
    `first` seconds, stored."""
    lon, lat = _forbidden_point()
    return _stored(store, _fixes(lon, lat, first, start + timedelta(seconds=first), count))


def test_a_child_that_ran_a_while_is_restarted_after_a_second() -> None:
    assert restart_delay(8.0, ran_s=2.0) == 8.0  # one that keeps dying waits longer
    assert restart_delay(30.0, ran_s=RESTART_MAX_S) == 1.0


#: Vehicles of both parts of two workers (`judge_part`): TRK-4 is the first's, TRK-1 the
#: second's.
PAIR = ("TRK-4", "TRK-1")


def test_a_vehicle_is_judged_by_the_same_worker_on_every_run() -> None:
    # CRC-32, not Python's salted hash: the same part in the parent, the children and
    # the next run of the server.
    assert [judge_part(v, 2) for v in PAIR] == [0, 1]
    assert [judge_part(v, 3) for v in ("TRK-1", "TRK-2", "TRK-3", "TRK-4")] == [2, 1, 1, 0]
    assert {judge_part(f"TRK-{n}", 4) for n in range(100)} == {0, 1, 2, 3}


@pytest.mark.timeout(180)
async def test_two_workers_share_the_vehicles_and_a_killed_one_leaves_the_other_judging(
    tmp_path: Path,
) -> None:
    config = _config(tmp_path)
    store = Store.open(config.storage.url)
    start = utc_now() - timedelta(seconds=120)
    for n, vehicle in enumerate(PAIR):
        declared = declaration(declaration_id=f"D-{n}", vehicle_id=vehicle, lock_ids=[f"EL-{n}"])
        store.create_declaration(declared, start - timedelta(minutes=5))
        store.start_trip(f"D-{n}", start)
    lon, lat = _forbidden_point()
    relayed = Relayed()
    workers = JudgeWorkers(
        JudgeSpec(config, load_lock_secrets(config), tick_s=0.2),
        2,
        relayed.alarms.append,
        relayed.judged.append,
    )
    task = asyncio.create_task(workers.run())
    try:
        await asyncio.wait_for(workers.wait_ready(), 60)
        pids = [pid for pid in workers.pids if pid is not None]
        assert len(set(pids)) == 2 and os.getpid() not in pids
        assert [_comm(pid) for pid in pids] == ["bw-judge-1", "bw-judge-2"]
        both = [
            m
            for vehicle in PAIR
            for m in _stored(
                store, _fixes(lon, lat, 1, start + timedelta(seconds=1), INSIDE, vehicle)
            )
        ]
        await workers.on_messages(both)
        await wait_until(lambda: workers.judged == 2 * INSIDE and len(relayed.alarms) == 2, 20)
        # each vehicle's messages went to its own worker, and only there
        assert [w.judged for w in workers.workers] == [INSIDE, INSIDE]
        assert sorted(_vehicles(store, relayed.alarms)) == sorted(PAIR)

        # The first worker (TRK-4's) is killed; TRK-1's goes on judging meanwhile.
        os.kill(pids[0], signal.SIGKILL)
        await wait_until(lambda: not workers.is_ready(), 10)
        later = start + timedelta(seconds=INSIDE + 1)
        more = [
            m
            for vehicle in PAIR
            for m in _stored(store, _fixes(lon, lat, INSIDE + 1, later, 2, vehicle))
        ]
        await workers.on_messages(more)
        await wait_until(lambda: workers.workers[1].judged == INSIDE + 2, 20)
        await asyncio.wait_for(workers.wait_ready(), 60)
        assert workers.pids[0] not in (None, pids[0]) and workers.pids[1] == pids[1]
        # The new first worker judges TRK-4 again (its trip from the store), and nothing
        # is raised twice.
        last = later + timedelta(seconds=2)
        await workers.on_messages(_stored(store, _fixes(lon, lat, INSIDE + 3, last, 2, PAIR[0])))
        await wait_until(lambda: workers.workers[0].judged >= INSIDE + 2, 20)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    alarms, total = AlarmService(store.engine).find(AlarmQuery(state="active"))
    assert sorted((a.type, a.vehicle_id, a.count) for a in alarms) == [
        ("FORBIDDEN_ZONE", "TRK-1", 1),
        ("FORBIDDEN_ZONE", "TRK-4", 1),
    ]
    assert total == 2
    store.close()


def _comm(pid: int | None) -> str:
    """What `ps -o comm` shows for `pid`."""
    return Path(f"/proc/{pid}/comm").read_text().strip()


def _vehicles(store: Store, ids: list[int]) -> list[str]:
    service = AlarmService(store.engine)
    return [a.vehicle_id for a in (service.get(i, history=False) for i in ids) if a is not None]


def test_a_priority_that_may_not_be_raised_is_said_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def refuse(*_: object) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "setpriority", refuse)
    with caplog.at_level(logging.INFO, logger="server.child"):
        set_priority(-5, "gate worker")
    assert [r.getMessage() for r in caplog.records] == [
        "the gate worker keeps its CPU priority (nice -5 needs root or CAP_SYS_NICE)"
    ]

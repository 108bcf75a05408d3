"""The judge on the ingest path: stored messages → rules in fix-time order → effects.

Uses the rules' synthetic world and noisy trip generator; the store is real (SQLite).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import update

from contract.payloads import LockReport, Position
from server.judge import Judge
from server.judge_order import RECENT_EVENTS
from server.rules.alarms import Clear, Effect, Raise
from server.rules.profiles import DEFAULT_PROFILES
from server.store import Store, schema
from server.store.database import IncomingMessage
from server.store.trip import Trip
from tests.server.rules.trajectory import T0, TripBuilder, clean_trip, world


class RecordingSink:
    """Idempotent like the real alarm store: an effect applied twice counts once."""

    def __init__(self) -> None:
        self.effects: list[tuple[str, Effect]] = []
        self._seen: set[tuple[str, str, str, str]] = set()

    def apply(self, trip: Trip, effects: Sequence[Effect]) -> None:
        for e in effects:
            key = (trip.trip_id, type(e).__name__, e.alarm_type, e.at.isoformat())
            if key not in self._seen:
                self._seen.add(key)
                self.effects.append((trip.trip_id, e))

    def raised(self) -> list[str]:
        return [e.alarm_type for _, e in self.effects if isinstance(e, Raise)]

    def cleared(self) -> list[str]:
        return [e.alarm_type for _, e in self.effects if isinstance(e, Clear)]


def start_trip(store: Store, declaration_id: str, vehicle_id: str) -> None:
    """A day-long trip of `vehicle_id` on R-SZ-DG, declared an hour before T0, started at T0."""
    store.create_declaration(
        {
            "declaration_id": declaration_id,
            "vehicle_id": vehicle_id,
            "route_id": "R-SZ-DG",
            "time_limit_min": 24 * 60,
            "enterprise": {"code": "1", "name": "x", "credit": "general"},
        },
        T0 - timedelta(hours=1),
    )
    store.start_trip(declaration_id, T0)


@pytest.fixture
def store(tmp_path):
    s = Store.open(f"sqlite:///{tmp_path / 'judge.db'}")
    start_trip(s, "D1", "T1")
    yield s
    s.close()


@pytest.fixture(scope="module")
def geography():
    return world()


def incoming(positions: Sequence[Position]) -> list[IncomingMessage]:
    """As received when they were dated (a gateway online, its clock right)."""
    return [IncomingMessage("position", p, p.to_json().decode(), p.ts) for p in positions]


def feed(store: Store, judge: Judge, positions: Sequence[Position], batch: int = 20) -> None:
    for i in range(0, len(positions), batch):
        fresh = store.store_messages(incoming(positions[i : i + batch]))
        judge.judge_batch(fresh)


def renumber(positions: list[Position]) -> list[Position]:
    return [replace_seq(p, i + 1) for i, p in enumerate(positions)]


def replace_seq(p: Position, seq: int, **over: Any) -> Position:
    return p.model_copy(update={"seq": seq, **over})


def test_clean_trip_raises_nothing(store, geography):
    sink = RecordingSink()
    judge = Judge(store, geography, dict(DEFAULT_PROFILES), sink)
    feed(store, judge, renumber(clean_trip(seed=3)))
    assert sink.effects == []


def deviation_trip() -> list[Position]:
    b = TripBuilder(seed=5, multipath_rate=0.0)
    b.stay(30).drive(3_300, 45).drive(14_000, 75)
    b.move_to_offset(1_200, 40).off_route(1_200, 3_000, 60).move_to_offset(0, 40)
    b.drive(25_000, 75)
    return renumber(b.positions)


def test_deviation_in_order_raised_once_and_cleared(store, geography):
    sink = RecordingSink()
    judge = Judge(store, geography, dict(DEFAULT_PROFILES), sink)
    feed(store, judge, deviation_trip())
    assert sink.raised() == ["ROUTE_DEVIATION"]
    assert sink.cleared() == ["ROUTE_DEVIATION"]


def split_at_gap(geography, positions):
    gap_start = next(i for i, p in enumerate(positions) if _is_off(geography, p, 60)) - 5
    gap_end = max(i for i, p in enumerate(positions) if _is_off(geography, p)) + 20
    assert gap_end > gap_start + 60
    gap = [replace_seq(p, p.seq, replayed=True) for p in positions[gap_start:gap_end]]
    return positions[:gap_start], gap, positions[gap_end:]


def test_deviation_during_a_gap_found_when_the_backlog_arrives(store, geography):
    """The deviation's positions arrive after later live ones (outbox replay)."""
    positions = deviation_trip()
    before, gap, after = split_at_gap(geography, positions)
    sink = RecordingSink()
    judge = Judge(store, geography, dict(DEFAULT_PROFILES), sink, hold_s=60)
    feed(store, judge, before)
    feed(store, judge, after[:100])  # live again; the backlog is still on its way
    # nothing received for longer than `silence_s` (a coverage gap): offline, and back
    assert (sink.raised(), sink.cleared()) == (["DEVICE_OFFLINE"], ["DEVICE_OFFLINE"])
    feed(store, judge, gap)  # the backlog arrives, in several batches
    feed(store, judge, after[100:])
    assert judge.reruns == 0  # judged once, in order, when complete
    raises = [e for _, e in sink.effects if isinstance(e, Raise)]
    assert [e.alarm_type for e in raises] == ["DEVICE_OFFLINE", "ROUTE_DEVIATION"]
    raises = raises[1:]
    assert gap[0].ts <= raises[0].at <= gap[-1].ts  # at the fix time inside the gap
    assert sink.cleared() == ["DEVICE_OFFLINE", "ROUTE_DEVIATION"]


def test_backlog_slower_than_the_hold_is_judged_again(store, geography):
    positions = deviation_trip()
    before, gap, after = split_at_gap(geography, positions)
    sink = RecordingSink()
    judge = Judge(store, geography, dict(DEFAULT_PROFILES), sink, hold_s=30)
    clock = 1000.0
    for chunk in (before, after[:100]):
        for i in range(0, len(chunk), 20):
            judge.judge_batch(store.store_messages(incoming(chunk[i : i + 20])), now=clock)
    judge.tick(after[99].ts, clock=clock + 31)  # the hold passes: judged without the gap
    # nothing received for longer than `silence_s` (a coverage gap): offline, and back
    assert (sink.raised(), sink.cleared()) == (["DEVICE_OFFLINE"], ["DEVICE_OFFLINE"])
    for i in range(0, len(gap), 20):  # the backlog turns up, batch by batch
        judge.judge_batch(store.store_messages(incoming(gap[i : i + 20])), now=clock + 40)
    assert judge.reruns == 1  # once, when the holes had filled
    assert sink.raised() == ["DEVICE_OFFLINE", "ROUTE_DEVIATION"]


def test_lost_sequence_number_delays_judging_at_most_the_hold(store, geography):
    positions = renumber(clean_trip(seed=8))[:300]
    del positions[150]  # a number that never comes (a will reserved, never sent)
    sink = RecordingSink()
    judge = Judge(store, geography, dict(DEFAULT_PROFILES), sink, hold_s=30)
    judge.judge_batch(store.store_messages(incoming(positions[:150])), now=0.0)
    judge.judge_batch(store.store_messages(incoming(positions[150:])), now=1.0)
    run = judge._runs["T1"]
    assert run.last_key is not None and run.last_key[1] == 150
    judge.tick(positions[-1].ts, clock=31.5)
    assert run.last_key[1] == positions[-1].seq


def test_restarted_judge_rebuilds_without_repeating_effects(store, geography):
    positions = deviation_trip()
    sink = RecordingSink()
    feed(store, Judge(store, geography, dict(DEFAULT_PROFILES), sink), positions[:-50])
    before = list(sink.effects)
    assert [e.alarm_type for _, e in before if isinstance(e, Raise)] == ["ROUTE_DEVIATION"]
    again = Judge(store, geography, dict(DEFAULT_PROFILES), sink)  # a new process
    feed(store, again, positions[-50:])
    assert sink.effects[: len(before)] == before
    assert sink.raised() == ["ROUTE_DEVIATION"]


def _is_off(geography, p: Position, metres: float = 800) -> bool:
    return p.lat is not None and geography.distance_to_route_m("R-SZ-DG", p.lon, p.lat) > metres


def test_tick_raises_device_offline_after_silence(store, geography):
    sink = RecordingSink()
    judge = Judge(store, geography, dict(DEFAULT_PROFILES), sink)
    positions = renumber(clean_trip(seed=4))[:200]
    feed(store, judge, positions)
    judge.tick(positions[-1].ts + timedelta(seconds=30))
    assert sink.raised() == []
    judge.tick(positions[-1].ts + timedelta(hours=2))
    assert "DEVICE_OFFLINE" in sink.raised()


def test_tick_forgets_trips_that_have_ended(store, geography):
    """A released truck that parks and switches off is not DEVICE_OFFLINE, nor late."""
    sink = RecordingSink()
    judge = Judge(store, geography, dict(DEFAULT_PROFILES), sink)
    positions = renumber(clean_trip(seed=4))[:200]
    feed(store, judge, positions)
    with store.engine.begin() as conn:
        conn.execute(
            update(schema.trips).where(schema.trips.c.trip_id == "D1").values(status="released")
        )
    judge.tick(positions[-1].ts + timedelta(days=3))
    assert sink.effects == [] and judge._runs == {}


def test_tick_watches_a_trip_not_heard_from_since_it_started(store, geography):
    """A gateway dead from the departure gate on: DEVICE_OFFLINE after `silence_s`."""
    sink = RecordingSink()
    judge = Judge(store, geography, dict(DEFAULT_PROFILES), sink)
    silence = DEFAULT_PROFILES["general"].silence_s
    judge.tick(T0 + timedelta(seconds=silence - 1))
    assert sink.effects == []
    judge.tick(T0 + timedelta(seconds=silence + 1))
    assert sink.raised() == ["DEVICE_OFFLINE"]
    assert sink.effects[0][1].detail["last_heard_at"] == T0.isoformat()


def test_a_judge_of_several_follows_only_the_trips_of_its_vehicles(store, geography):
    """One of several judge workers (`owns`): its timers watch its vehicles' trips only —
    another worker's silent truck is not DEVICE_OFFLINE here (it is heard there)."""
    start_trip(store, "D2", "T2")
    silence = DEFAULT_PROFILES["general"].silence_s
    raised = {}
    for vehicle in ("T1", "T2"):
        sink = RecordingSink()
        judge = Judge(store, geography, dict(DEFAULT_PROFILES), sink, owns={vehicle}.__contains__)
        judge.tick(T0 + timedelta(seconds=silence + 1))
        raised[vehicle] = [(trip, e.alarm_type) for trip, e in sink.effects]
    assert raised == {"T1": [("D1", "DEVICE_OFFLINE")], "T2": [("D2", "DEVICE_OFFLINE")]}


def test_next_declaration_of_the_vehicle_does_not_stop_the_trip(store, geography):
    """The declaration system registers the truck's next transit while it is on the road."""
    store.create_declaration(
        {
            "declaration_id": "D2",
            "vehicle_id": "T1",
            "route_id": "R-SZ-DG",
            "time_limit_min": 60,
            "enterprise": {"code": "1", "name": "x", "credit": "general"},
        },
        T0 + timedelta(minutes=5),
    )
    sink = RecordingSink()
    feed(store, Judge(store, geography, dict(DEFAULT_PROFILES), sink), deviation_trip())
    assert [(trip, e.alarm_type) for trip, e in sink.effects if isinstance(e, Raise)] == [
        ("D1", "ROUTE_DEVIATION")
    ]


def with_whole_second_lock_reports(positions: list[Position]) -> list[Position | LockReport]:
    """The fixes 0.4 s into their second, and every 10th followed by an e-lock report
    stamped with the lock's own whole-second clock (so it sorts just before that fix):
    battery falling below the floor and back, and the lock opened on the road."""
    out: list[Position | LockReport] = []
    for i, p in enumerate(positions):
        fix = p.model_copy(update={"ts": p.ts + timedelta(milliseconds=400)})
        out.append(fix)
        if i % 10 == 9:
            opened = i == len(positions) // 2 - (len(positions) // 2) % 10 + 9
            report = LockReport(
                node_id=p.node_id,
                seq=0,
                ts=fix.ts.replace(microsecond=0),
                lock_id="L1",
                state="unsealed" if opened else "sealed",
                event="unsealed" if opened else "status",
                battery_pct=20.0 if 300 <= i < 600 else 80.0,
            )
            out.append(report)
    return [m.model_copy(update={"seq": n + 1}) for n, m in enumerate(out)]


def stored(messages: Sequence[Position | LockReport]) -> list[IncomingMessage]:
    return [
        IncomingMessage(
            "position" if isinstance(m, Position) else "lock", m, m.to_json().decode(), T0
        )
        for m in messages
    ]


@pytest.mark.parametrize("batch", [1, 7])
def test_lock_report_a_moment_late_is_judged_again_from_memory(store, geography, batch):
    """An e-lock report a fraction of a second behind the last fix: the run goes back a
    step in memory, with no store read, and ends where a rebuild from the store ends."""
    messages = with_whole_second_lock_reports(renumber(clean_trip(seed=6))[:1200])
    reports = sum(1 for m in messages if isinstance(m, LockReport))
    sink = RecordingSink()
    judge = Judge(store, geography, dict(DEFAULT_PROFILES), sink)
    for i in range(0, len(messages), batch):
        judge.judge_batch(store.store_messages(stored(messages[i : i + batch])))
    # A report that came after its second's fix (in another batch) was judged again,
    # from memory every time.
    assert judge.reruns_from_store == 0
    if batch == 1:
        assert judge.reruns == reports
    else:
        assert 0 < judge.reruns < reports
    assert sorted(set(sink.raised())) == ["LOCK_LOW_BATTERY", "LOCK_OPENED"]
    assert sink.cleared() == ["LOCK_LOW_BATTERY"]
    # The opened lock is placed at the fix before its second, as in fix-time order.
    opened = next(m for m in messages if isinstance(m, LockReport) and m.event == "unsealed")
    before = max(
        (m for m in messages if isinstance(m, Position) and m.ts < opened.ts), key=lambda m: m.ts
    )
    raised = next(
        e for _, e in sink.effects if isinstance(e, Raise) and e.alarm_type == "LOCK_OPENED"
    )
    assert raised.position == pytest.approx((before.lon, before.lat), abs=1e-7)

    again = RecordingSink()
    rebuilt = Judge(store, geography, dict(DEFAULT_PROFILES), again)  # a new process
    now = messages[-1].ts
    rebuilt.tick(now)
    judge.tick(now)
    assert rebuilt.reruns == 0
    assert [e for _, e in sink.effects] == [e for _, e in again.effects]
    assert judge._runs["T1"].state == rebuilt._runs["T1"].state
    assert judge._runs["T1"].last_key == rebuilt._runs["T1"].last_key


def test_a_message_late_by_more_than_the_recent_events_is_judged_again_from_the_store(
    store, geography
):
    positions = renumber(clean_trip(seed=6))[:200]
    late = positions[100]
    early = [p for p in positions if p is not late]
    sink = RecordingSink()
    judge = Judge(store, geography, dict(DEFAULT_PROFILES), sink, hold_s=30)
    judge.judge_batch(store.store_messages(incoming(early)), now=0.0)
    judge.tick(early[-1].ts, clock=31.0)  # the hold passes: judged without it
    assert judge._runs["T1"].last_key == (early[-1].ts, early[-1].seq)
    judge.judge_batch(store.store_messages(incoming([late])), now=32.0)
    assert (judge.reruns, judge.reruns_from_store) == (1, 1)
    assert judge._runs["T1"].last_key == (early[-1].ts, early[-1].seq)
    assert len(judge._runs["T1"].recent) == RECENT_EVENTS  # refilled by the replay


def test_silence_is_measured_on_the_server_s_receive_time(store, geography):
    """A gateway whose clock runs an hour behind but talks all the time is not silent; one
    whose last message was dated just now but received long ago is."""
    sink = RecordingSink()
    judge = Judge(store, geography, dict(DEFAULT_PROFILES), sink)
    silence = DEFAULT_PROFILES["general"].silence_s
    positions = renumber(clean_trip(seed=4))[:50]
    late_clock = [
        IncomingMessage("position", p, p.to_json().decode(), p.ts + timedelta(hours=1))
        for p in positions
    ]
    judge.judge_batch(store.store_messages(late_clock))
    received_last = positions[-1].ts + timedelta(hours=1)
    judge.tick(received_last + timedelta(seconds=silence - 10))  # device time: 1 h silent
    assert sink.raised() == []
    judge.tick(received_last + timedelta(seconds=silence + 10))
    assert sink.raised() == ["DEVICE_OFFLINE"]
    # A judge started afresh (a restarted server) takes the receive time from the store.
    sink = RecordingSink()
    again = Judge(store, geography, dict(DEFAULT_PROFILES), sink)
    again.tick(received_last + timedelta(seconds=silence - 10))
    assert sink.raised() == []
    again.tick(received_last + timedelta(seconds=silence + 10))
    assert sink.raised() == ["DEVICE_OFFLINE"]

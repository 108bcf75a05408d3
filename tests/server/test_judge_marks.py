"""How far the judge has judged each vehicle (`server.judge_marks`), as the gate reads it:
written by a real `Judge` over a real store, through gaps, late messages, a
restart and a new trip, on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from contract.payloads import CommandResult, Position
from server import judge_marks
from server.judge import Judge
from server.judge_order import SEQUENCED_CHANNELS, SeqWindow
from server.judge_worker import decode_rows
from server.rules.alarms import Effect, Raise
from server.rules.profiles import DEFAULT_PROFILES
from server.store import Store, schema
from server.store.database import IncomingMessage, as_utc
from server.store.trip import Trip
from tests.server.rules.trajectory import T0, clean_trip, world
from tests.server.test_judge import (
    RecordingSink,
    deviation_trip,
    incoming,
    renumber,
    replace_seq,
    start_trip,
)

GEOGRAPHY = world()


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    """SQLite and PostgreSQL (tests/conftest.py)."""
    s = Store.open(store_url)
    start_trip(s, "D1", "T1")
    yield s
    s.close()


def judge_of(store: Store) -> Judge:
    return Judge(store, GEOGRAPHY, dict(DEFAULT_PROFILES), RecordingSink(), hold_s=30)


def behind(store: Store, trip_id: str = "D1", until: datetime | None = None) -> str | None:
    """Why an arrival of the trip at `until` (default: as the newest message the store
    holds of the truck was received), on the gate's clock as on the server's, would wait
    for the judge."""
    with store.engine.connect() as conn:
        if until is None:
            newest = conn.execute(
                select(func.max(schema.edge_messages.c.received_at)).where(
                    schema.edge_messages.c.node_id == "T1"
                )
            ).scalar()
            until = as_utc(newest) or T0
        return judge_marks.behind(conn, "T1", trip_id, T0, until, now=until)


def mark(store: Store) -> tuple[str, int] | None:
    """(trip, seq) of the vehicle's mark."""
    with store.engine.connect() as conn:
        found = judge_marks.read(conn, "T1")
    return None if found is None else (found.trip_id, found.seq)


def gaps(store: Store) -> tuple[tuple[int, int], ...]:
    with store.engine.connect() as conn:
        found = judge_marks.read(conn, "T1")
    assert found is not None
    return found.gaps


def positions(count: int, seed: int = 3) -> list[Position]:
    return renumber(clean_trip(seed=seed))[:count]


def test_the_mark_follows_each_batch_and_the_gate_sees_it(store: Store) -> None:
    trip = positions(120)
    judge = judge_of(store)
    judge.judge_batch(store.store_messages(incoming(trip[:60])), now=0.0)
    assert mark(store) == ("D1", 60) and behind(store) is None
    store.store_messages(incoming(trip[60:]))  # stored, not judged yet
    assert behind(store) == "messages of T1 stored up to no. 120, judged up to no. 60"
    judge.judge_batch(store.store_messages(incoming(trip[60:])), now=1.0)  # (redelivered)
    judge.judge_batch(incoming(trip[60:]), now=1.0)
    assert mark(store) == ("D1", 120) and behind(store) is None


def test_a_gap_holds_the_mark_until_it_fills_or_the_hold_passes(store: Store) -> None:
    trip = positions(100)
    judge = judge_of(store)
    judge.judge_batch(store.store_messages(incoming(trip[:40])), now=0.0)
    judge.judge_batch(store.store_messages(incoming(trip[50:])), now=0.0)
    assert mark(store) == ("D1", 40)  # 41–50 are on their way: 51–100 wait for them
    assert behind(store) == "messages of T1 stored up to no. 100, judged up to no. 40"
    judge.judge_batch(store.store_messages(incoming(trip[40:45])), now=1.0)
    assert mark(store) == ("D1", 45)
    judge.tick(trip[-1].ts, clock=31.0)  # the hold passes: judged without 46–50
    assert mark(store) == ("D1", 100) and gaps(store) == ((46, 50),)
    assert behind(store) is None
    # 46–50 come after all (a backlog slower than the hold): stored in the gap, and not
    # judged until the judge has them — however long that takes (a worker replaced)
    late = store.store_messages(incoming(trip[45:50]))
    assert behind(store) == "message no. 46 of T1 came late and is not judged yet"
    window = SeqWindow(upto=100, missing={46, 47, 48, 49, 50})
    for item in late[:2]:
        msg = item.message
        window.add((msg.ts, msg.seq), msg, 40.0)
    assert window.judged_upto == 45  # late 46, 47 held while 48–50 are missing
    judge.judge_batch(late, now=40.0)  # all of them: judged again with the rest
    assert mark(store) == ("D1", 100) and gaps(store) == () and behind(store) is None


def test_messages_before_the_trip_and_of_other_channels_do_not_count(store: Store) -> None:
    trip = positions(10, 5)
    early = [p.model_copy(update={"ts": T0 - timedelta(minutes=5)}) for p in trip[:3]]
    store.store_messages(incoming(early))
    judge = judge_of(store)
    judge.follow_trips()  # taken up: nothing of the trip yet (those are before its start)
    assert mark(store) == ("D1", 3) and behind(store) is None
    judge.judge_batch(store.store_messages(incoming(trip[3:6])), now=0.0)
    assert mark(store) == ("D1", 6)
    # the truck answers a command (seq 7): numbered, stored, not a channel the rules
    # look at; the judge is handed it too (SEQUENCED_CHANNELS), so it is no hole
    answer = CommandResult(node_id="T1", seq=7, ts=trip[6].ts, command_id="c-1", result="done")
    assert "command/result" in SEQUENCED_CHANNELS
    wire = [("command/result", answer.to_json().decode(), T0)]
    assert [m.message for m in decode_rows(wire)] == [answer]  # as a judge worker reads it
    answered = [IncomingMessage("command/result", answer, wire[0][1], T0)]
    assert behind(store) is None
    judge.judge_batch(store.store_messages(answered + incoming(trip[7:])), now=1.0)
    assert mark(store) == ("D1", 10) and behind(store) is None


def test_a_restarted_judge_takes_the_trip_up_and_writes_its_mark(store: Store) -> None:
    trip = positions(80)
    judge_of(store).judge_batch(store.store_messages(incoming(trip[:30])), now=0.0)
    store.store_messages(incoming(trip[30:50] + trip[60:]))  # stored while no judge ran
    assert behind(store) is not None
    again = judge_of(store)  # a new process: nothing in memory
    again.follow_trips()  # its first timer tick
    # 51–60 are not in the store yet: a gap of the mark until they are judged
    assert mark(store) == ("D1", 80) and gaps(store) == ((51, 60),)
    assert behind(store) is None
    store.store_messages(incoming(trip[50:60]))
    assert behind(store) == "message no. 51 of T1 came late and is not judged yet"
    again.judge_batch(incoming(trip[50:60]), now=0.0)
    again.tick(trip[-1].ts, clock=31.0)  # (their hold: holes below them none left)
    assert gaps(store) == () and behind(store) is None


def test_a_mark_of_the_vehicle_s_last_trip_does_not_count(store: Store) -> None:
    trip = positions(40)
    judge = judge_of(store)
    judge.judge_batch(store.store_messages(incoming(trip[:20])), now=0.0)
    with store.engine.begin() as conn:  # the trip ends, and the next one starts
        conn.exec_driver_sql("UPDATE trips SET status = 'released' WHERE trip_id = 'D1'")
    start_trip(store, "D2", "T1")
    store.store_messages(incoming(trip[20:]))
    assert mark(store) == ("D1", 20)
    assert behind(store, "D2") == "the judge has not taken the trip up yet"
    judge.follow_trips()
    assert mark(store) == ("D2", 40)


def test_a_trip_the_judge_never_took_up_waits_even_without_messages(store: Store) -> None:
    """A truck silent since its departure, and no judge running: nothing says whether it
    should be DEVICE_OFFLINE."""
    assert behind(store) == "the judge has not taken the trip up yet"
    judge_of(store).follow_trips()
    assert mark(store) == ("D1", 0) and behind(store) is None


def test_messages_after_the_passage_need_not_be_judged(store: Store) -> None:
    """A truck waiting at the barrier goes on reporting: its arrival is decided on what
    it sent up to the passage's time, so that a lagging judge cannot hold it forever."""
    trip = positions(60)
    judge = judge_of(store)
    judge.judge_batch(store.store_messages(incoming(trip[:30])), now=0.0)
    store.store_messages(incoming(trip[30:]))
    with store.engine.connect() as conn:
        at_passage = judge_marks.behind(conn, "T1", "D1", T0, trip[29].ts, trip[29].ts)
        later = judge_marks.behind(conn, "T1", "D1", T0, trip[30].ts, trip[30].ts)
    assert at_passage is None and later is not None


class FailingOnce(RecordingSink):
    """The alarm store refuses once (SQLite busy past its timeout, a dropped connection)."""

    failed = False

    def apply(self, trip: Trip, effects: Sequence[Effect]) -> None:
        if effects and not self.failed:
            self.failed = True
            raise OperationalError("INSERT", {}, Exception("database is locked"))
        super().apply(trip, effects)


def test_effects_that_were_not_applied_are_never_marked_judged(store: Store) -> None:
    trip = deviation_trip()
    sink = FailingOnce()
    judge = Judge(store, GEOGRAPHY, dict(DEFAULT_PROFILES), sink, hold_s=30)
    marks = []
    for i in range(0, len(trip), 20):
        judge.judge_batch(store.store_messages(incoming(trip[i : i + 20])), now=0.0)
        marks.append(mark(store))
    assert sink.failed
    # the batch whose effects failed is judged again from the store with the next one:
    # the alarm is raised all the same, and the mark never covered it unapplied
    assert sink.raised() == ["ROUTE_DEVIATION"]
    assert mark(store) == ("D1", trip[-1].seq) and behind(store) is None


# ---- the timer rules: silence and the time limit ---------------------------------------


def silence_s() -> float:
    return DEFAULT_PROFILES["general"].silence_s


def due(store: Store) -> datetime | None:
    with store.engine.connect() as conn:
        found = judge_marks.read(conn, "T1")
    assert found is not None
    return found.due_at


def test_a_passage_after_the_truck_fell_silent_waits_for_the_judge_s_timers(
    store: Store,
) -> None:
    """A judge worker that hangs, or is being replaced, runs no timers: a truck silent
    longer than `silence_s` would be decided before its DEVICE_OFFLINE is raised."""
    trip = positions(30)
    sink = RecordingSink()
    judge = Judge(store, GEOGRAPHY, dict(DEFAULT_PROFILES), sink, hold_s=30)
    judge.judge_batch(store.store_messages(incoming(trip)), now=0.0)
    heard = trip[-1].ts  # received then (`incoming`)
    silent_until = heard + timedelta(seconds=silence_s())
    assert due(store) == silent_until
    assert behind(store, until=silent_until) is None  # not silent longer than allowed yet
    arrival = silent_until + timedelta(seconds=1)
    assert behind(store, until=arrival) == (
        f"the truck has been silent too long since {silent_until.isoformat(timespec='seconds')}"
        " and the judge's timers have not run since"
    )
    judge.tick(arrival + timedelta(seconds=3), clock=1.0)  # the judge's next tick
    assert sink.raised() == ["DEVICE_OFFLINE"]
    assert due(store) is None  # raised: nothing more falls due until it is heard from
    assert behind(store, until=arrival) is None
    # heard from again: its silence counts from then
    more = positions(40)[30:]
    judge.judge_batch(store.store_messages(incoming(more)), now=2.0)
    assert due(store) == more[-1].ts + timedelta(seconds=silence_s())


def silent_for_too_long(
    store: Store,
) -> tuple[Judge, RecordingSink, list[Position], list[Position]]:
    """A judge that judged the first 20 of a trip's 40 fixes, and the other 20, sent after
    a silence longer than `silence_s` (received when dated: `incoming`)."""
    trip = positions(40)
    sink = RecordingSink()
    judge = Judge(store, GEOGRAPHY, dict(DEFAULT_PROFILES), sink, hold_s=30)
    judge.judge_batch(store.store_messages(incoming(trip[:20])), now=0.0)
    gap = timedelta(seconds=silence_s() + 60)
    return judge, sink, trip, [replace_seq(p, p.seq, ts=p.ts + gap) for p in trip[20:]]


def test_a_silence_that_ended_before_any_tick_is_raised_all_the_same(store: Store) -> None:
    """The judge hung (or lagged) through the whole of a truck's silence and no tick ran:
    the first message after it is judged as at the moment it came, the silence first —
    DEVICE_OFFLINE, then cleared by that message."""
    judge, sink, trip, again = silent_for_too_long(store)
    judge.judge_batch(store.store_messages(incoming(again)), now=1.0)
    assert (sink.raised(), sink.cleared()) == (["DEVICE_OFFLINE"], ["DEVICE_OFFLINE"])
    raised = next(e for _, e in sink.effects if isinstance(e, Raise))
    assert raised.at == trip[19].ts + timedelta(seconds=silence_s())  # received then
    # a pause within `silence_s` is nothing
    short = timedelta(seconds=silence_s() - 1)
    more = [replace_seq(p, 40 + i, ts=again[-1].ts + short) for i, p in enumerate(trip[:1])]
    judge.judge_batch(store.store_messages(incoming(more)), now=2.0)
    assert sink.raised() == ["DEVICE_OFFLINE"]


def arrived(store: Store, at: datetime) -> None:
    """The truck at its destination gate, the passage received at `at` (dated a minute
    later by the gate's clock, which runs ahead), its decision waiting for the judge."""
    with store.engine.begin() as conn:
        conn.execute(schema.trips.update().values(status="arrived"))
        conn.execute(
            schema.edge_messages.insert().values(
                node_id="gate-1", seq=7, channel="passage", ts=at + timedelta(minutes=1),
                received_at=at, payload="{}",
            )
        )  # fmt: skip
        conn.execute(
            schema.passages.insert().values(
                passage_id="P-1", gate_node="gate-1", lane="L1", direction="in",
                containers=[], images=[], ts=at + timedelta(minutes=1), seq=7,
                replayed=False, trip_id="D1", phase="arrival", decision="hold",
                reasons=[], reason_codes=["judging"], decided_at=at,
            )
        )  # fmt: skip


@pytest.mark.parametrize("silent_at_the_gate", [False, True])
def test_an_arrived_trip_s_timers_run_as_at_its_arrival(
    store: Store, silent_at_the_gate: bool
) -> None:
    """Waiting at the barrier for the decision counts neither as silence nor against the
    time limit; silence before the arrival still does, at the arrival's time."""
    trip = positions(30)
    sink = RecordingSink()
    judge = Judge(store, GEOGRAPHY, dict(DEFAULT_PROFILES), sink, hold_s=30)
    judge.judge_batch(store.store_messages(incoming(trip)), now=0.0)
    silent_until = trip[-1].ts + timedelta(seconds=silence_s())
    at = silent_until + timedelta(seconds=60 if silent_at_the_gate else -60)
    arrived(store, at)
    # the truck talks while it waits at the barrier: its silence before still counts
    # (two minutes after the arrival: silent longer than `silence_s` by then, in both
    # cases — waiting at the barrier, which does not count)
    waiting = [
        replace_seq(p, 31 + i, ts=at + timedelta(seconds=120 + i)) for i, p in enumerate(trip[:3])
    ]
    judge.judge_batch(store.store_messages(incoming(waiting)), now=1.0)
    decided_again = waiting[-1].ts + timedelta(days=3)  # long after: the time limit too
    assert behind(store, until=decided_again) == (
        "the judge's timers have not run for the trip as at its arrival"
    )
    judge.tick(decided_again, clock=2.0)
    if silent_at_the_gate:
        assert sink.raised() == ["DEVICE_OFFLINE"]
        assert [e.at for _, e in sink.effects if isinstance(e, Raise)] == [silent_until]
    else:
        assert sink.raised() == []
    assert behind(store, until=decided_again) is None


def test_a_silence_that_ended_before_the_arrival_is_raised_after_it(store: Store) -> None:
    """The judge hung: the truck's first message after a long silence, received before
    it arrived, is judged only once the trip is `arrived`. The silence is raised all the
    same, and the arrival's own timers (measured up to that message) add nothing."""
    judge, sink, _, again = silent_for_too_long(store)
    stored = store.store_messages(incoming(again))  # not judged yet: the judge hangs
    arrived(store, again[-1].ts + timedelta(seconds=30))
    judge.judge_batch(stored, now=1.0)
    assert (sink.raised(), sink.cleared()) == (["DEVICE_OFFLINE"], ["DEVICE_OFFLINE"])
    judge.tick(again[-1].ts + timedelta(days=3), clock=2.0)
    assert sink.raised() == ["DEVICE_OFFLINE"]
    assert behind(store, until=again[-1].ts + timedelta(days=3)) is None


def test_a_tick_whose_time_was_read_before_the_arrival_does_not_count_for_it(
    store: Store,
) -> None:
    """A tick reads the clock, then waits for the judge's lock; the trip arrives
    meanwhile. Its timers ran as at a time before the arrival: the mark does not say
    they ran for it."""
    trip = positions(30)
    sink = RecordingSink()
    judge = Judge(store, GEOGRAPHY, dict(DEFAULT_PROFILES), sink, hold_s=30)
    judge.judge_batch(store.store_messages(incoming(trip)), now=0.0)
    at = trip[-1].ts + timedelta(seconds=silence_s() + 2)  # silent too long, just
    arrived(store, at)
    judge.tick(at - timedelta(seconds=3), clock=1.0)  # read 3 s before the arrival
    assert sink.raised() == []
    with store.engine.connect() as conn:
        found = judge_marks.read(conn, "T1")
    assert found is not None and found.arrived_at is None
    assert behind(store, until=at) == (
        "the judge's timers have not run for the trip as at its arrival"
    )
    judge.tick(at + timedelta(seconds=2), clock=2.0)
    assert sink.raised() == ["DEVICE_OFFLINE"]
    assert behind(store, until=at) is None


def test_a_new_judge_raises_the_silence_that_ended_while_none_ran(store: Store) -> None:
    """The worker died (or hung and was killed) before the truck's silence became too
    long, and the truck was heard from again before its replacement took the trip up:
    the replacement finds the silence from the last one's mark."""
    trip = positions(40)
    judge_of(store).judge_batch(store.store_messages(incoming(trip[:20])), now=0.0)
    gap = timedelta(seconds=silence_s() + 60)
    again = [replace_seq(p, p.seq, ts=p.ts + gap) for p in trip[20:]]
    stored = store.store_messages(incoming(again))  # no judge running
    sink = RecordingSink()
    replacement = Judge(store, GEOGRAPHY, dict(DEFAULT_PROFILES), sink, hold_s=30)
    replacement.judge_batch(stored, now=1.0)  # takes the trip up from the store
    assert (sink.raised(), sink.cleared()) == (["DEVICE_OFFLINE"], ["DEVICE_OFFLINE"])
    raised = next(e for _, e in sink.effects if isinstance(e, Raise))
    assert raised.at == trip[19].ts + timedelta(seconds=silence_s())
    # and the next one, after a restart, has nothing more to raise
    later = RecordingSink()
    Judge(store, GEOGRAPHY, dict(DEFAULT_PROFILES), later, hold_s=30).follow_trips()
    assert later.raised() == []

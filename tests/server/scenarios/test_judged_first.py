"""A truck that arrives while the judge lags is not decided on incomplete alarms: every
part real — a `bondwatch-server` process (its judge worker and gate worker), its own
Mosquitto, SQLite.

The judge worker is stopped (SIGSTOP: it hangs, as a worker does that is stuck or being
replaced) just before two trucks send the last part of their trips: one leaves its
route there, one does not. Both arrive while their messages are stored and not judged.
Without the judge's mark the first would be released: its deviation has not been
judged. Each is held with the reason `judging`, its trip `arrived` and still judged; once the
worker runs again and has judged them, the server decides both again and, the trucks
still waiting at the barrier, sends the new commands: hold for the deviation, open for
the other.

A worker that hangs and is never let go is killed by the server after
`ingest.judge_stall_s`, and its replacement decides the truck. A truck that falls silent
while the worker hangs is held the same way: its messages are all judged, but the timer
tick that raises DEVICE_OFFLINE has not run.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.server.scenarios.conftest import running_world
from tests.server.scenarios.harness import Declared, World
from tests.server.scenarios.tracks import Truck

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

JUDGING = "the trip's alarms are not complete yet"


@pytest.fixture
def stopped_judge(world: World) -> Iterator[int]:
    """The judge worker's pid; it is let go again at the end whatever happened."""
    pid = world.children()["bw-judge"]
    try:
        yield pid
    finally:
        os.kill(pid, signal.SIGCONT)


def arrive_unjudged(
    world: World, truck: Truck, declared: Declared, lane: str
) -> tuple[str, list[str]]:
    """The truck at its destination gate, its lane waiting: the first command."""
    passage_id = f"P-{truck.node_id}"
    world.lane_waiting(declared.destination_gate, lane, passage_id)
    world.passage(
        declared.destination_gate, truck.now, declared.containers, declared.plate,
        passage_id=passage_id, lane=lane,
    )  # fmt: skip
    command = world.command_for(passage_id)
    return command.action, command.reasons


def released_on_its_way(
    world: World, node_id: str, seed: int, metres: float
) -> tuple[Truck, Declared]:
    """A truck departed and `metres` along its route, judged as usual, its goods
    released by the declaration system."""
    truck, trip = world.begin(node_id, seed=seed)
    truck.along(metres, 70)
    world.run(truck)
    world.release(trip, truck.now)
    return truck, trip


def held_for_its_deviation(world: World, passage_id: str) -> None:
    """The passage, held `judging` first, is decided again once judged: held for the
    deviation, and never opened."""
    world.wait_for(
        lambda: (
            world.api.get(f"/passages/{passage_id}").json()["reason_codes"] == ["unresolved_alarm"]
        ),
        60,
    )
    commands = world.all_commands_for(passage_id, 1.0)
    assert [c.action for c in commands] == ["hold"] * len(commands)
    assert commands[-1].reasons == ["unresolved alarm ROUTE_DEVIATION"]


def test_an_arrival_waits_for_the_judge_and_is_decided_again(
    world: World, stopped_judge: int
) -> None:
    strayed, strayed_trip = world.begin("TRK-JF1", seed=91)
    kept, kept_trip = world.begin("TRK-JF2", seed=92)
    for truck in (strayed, kept):
        truck.along(2_000, 70)
        world.run(truck)  # judged as usual
    for truck, trip in ((strayed, strayed_trip), (kept, kept_trip)):
        world.release(trip, truck.now)

    os.kill(stopped_judge, signal.SIGSTOP)
    strayed.sidestep(1_500, 1_000, 60)  # off the corridor: ROUTE_DEVIATION, once judged
    kept.along(5_000, 70)
    for truck in (strayed, kept):
        sent = truck.take()
        world.publish(sent)
        world.wait_for(lambda t=truck, s=sent: world.stored(t.node_id, s[-1].seq), 30)

    first = {
        truck.node_id: arrive_unjudged(world, truck, trip, lane)
        for truck, trip, lane in ((strayed, strayed_trip, "L1"), (kept, kept_trip, "L2"))
    }
    for action, reasons in first.values():
        assert action == "hold"
        assert len(reasons) == 1 and reasons[0].startswith(JUDGING), reasons
    for trip in (strayed_trip, kept_trip):  # arrived, its decision waiting for the judge
        assert world.trip(trip.declaration_id)["status"] == "arrived"
    assert world.alarms(strayed_trip.declaration_id) == []  # nothing judged yet

    os.kill(stopped_judge, signal.SIGCONT)
    commands = {
        truck.node_id: world.all_commands_for(f"P-{truck.node_id}", 1.0)
        for truck in (strayed, kept)
    }
    world.wait_for(
        lambda: all(len(world.all_commands_for(f"P-{n}", 0.1)) == 2 for n in commands), 60
    )
    commands = {n: world.all_commands_for(f"P-{n}", 0.0) for n in commands}
    strayed_again = commands["TRK-JF1"][1]
    assert strayed_again.action == "hold"
    assert strayed_again.reasons == ["unresolved alarm ROUTE_DEVIATION"]
    assert [c.action for c in commands["TRK-JF1"]] == ["hold", "hold"]  # never open
    assert [(c.action, c.reasons) for c in commands["TRK-JF2"][1:]] == [("open", [])]
    assert world.trip(strayed_trip.declaration_id)["status"] == "held"
    released = world.trip(kept_trip.declaration_id)
    assert released["status"] == "released" and released["ended_at"] is not None
    passage = world.api.get(f"/passages/P-{strayed.node_id}").json()
    assert passage["decision"] == "hold"
    assert passage["reason_codes"] == ["unresolved_alarm"]


def test_an_arrival_while_the_judge_worker_is_replaced_never_opens_on_a_deviation(
    world: World,
) -> None:
    """SIGKILL instead: the server starts a new worker after its backoff, which takes the
    trip up from the store. However quick it is, the strayed truck is never let through,
    and its deviation is found and holds it."""
    truck, trip = released_on_its_way(world, "TRK-JF3", 93, 2_000)
    killed = world.children()["bw-judge"]
    os.kill(killed, signal.SIGKILL)
    truck.sidestep(1_500, 1_000, 60)
    sent = truck.take()
    world.publish(sent)
    world.wait_for(lambda: world.stored(truck.node_id, sent[-1].seq), 30)
    action, reasons = arrive_unjudged(world, truck, trip, "L3")
    assert action == "hold", reasons
    world.wait_for(lambda: world.children().get("bw-judge") not in (None, killed), 30)
    held_for_its_deviation(world, f"P-{truck.node_id}")
    assert world.trip(trip.declaration_id)["status"] == "held"


# ---- a judge worker that hangs ------------------------------------------------------------

#: `ingest.judge_stall_s` of the test world: a judge worker silent this long is killed.
STALL_S = 10


@pytest.fixture(scope="module")
def watched_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with running_world(tmp_path_factory, "watched", ingest={"judge_stall_s": STALL_S}) as world:
        yield world


def test_a_judge_worker_that_hangs_is_replaced_and_its_truck_decided(
    watched_world: World,
) -> None:
    """The worker hangs (SIGSTOP) and nobody lets it go: the server kills it once it has
    said nothing for `judge_stall_s`, and the new worker judges the truck's deviation.
    The truck, held `judging` meanwhile, is then held for it."""
    world = watched_world
    truck, trip = released_on_its_way(world, "TRK-JF5", 95, 2_000)
    hung = world.children()["bw-judge"]
    os.kill(hung, signal.SIGSTOP)
    try:
        truck.sidestep(1_500, 1_000, 60)
        sent = truck.take()
        world.publish(sent)
        world.wait_for(lambda: world.stored(truck.node_id, sent[-1].seq), 30)
        action, reasons = arrive_unjudged(world, truck, trip, "L1")
        assert action == "hold" and reasons[0].startswith(JUDGING), reasons
        world.wait_for(lambda: world.children().get("bw-judge") not in (None, hung), 60)
        assert not Path(f"/proc/{hung}").exists()  # killed by the server, and reaped
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(hung, signal.SIGCONT)
    held_for_its_deviation(world, f"P-{truck.node_id}")
    metrics = world.api.get("/metrics").text.splitlines()
    assert "bondwatch_judge_workers_stalled_total 1" in metrics


# ---- the judge's timers: a truck that fell silent ---------------------------------------

#: How long a truck of the test world may be silent (`silence_s`, every credit class):
#: short, so that the test waits it out on the server's clock.
SILENCE_S = 20


@pytest.fixture(scope="module")
def quiet_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """A server whose trucks are DEVICE_OFFLINE after `SILENCE_S` of silence."""
    profiles = tmp_path_factory.mktemp("quiet-profiles") / "profiles.yaml"
    classes = ("advanced", "general_certified", "general", "dishonest")
    profiles.write_text(
        yaml.safe_dump({"profiles": {c: {"silence_s": SILENCE_S} for c in classes}}),
        encoding="utf-8",
    )
    with running_world(tmp_path_factory, "quiet", profiles=profiles) as world:
        yield world


def test_a_truck_silent_while_the_judge_hangs_is_not_let_through(quiet_world: World) -> None:
    """The judge worker hangs just after judging everything the truck sent; the truck
    then says nothing for longer than `silence_s` and arrives. Every message is judged,
    but the timer tick that would raise DEVICE_OFFLINE has not run: without the mark's
    `due_at` the truck would be let through. It is held `judging`; once the worker runs
    again its tick raises DEVICE_OFFLINE, and the server holds the truck for it."""
    world = quiet_world
    truck, trip = released_on_its_way(world, "TRK-JF4", 94, 1_000)
    judge = world.children()["bw-judge"]
    os.kill(judge, signal.SIGSTOP)
    try:
        time.sleep(SILENCE_S + 2)  # silent on the server's clock
        assert world.alarms(trip.declaration_id) == []  # the worker hangs: no tick
        action, reasons = arrive_unjudged(world, truck, trip, "L1")
        assert action == "hold"
        assert len(reasons) == 1 and reasons[0].startswith(JUDGING), reasons
        assert "silent too long" in reasons[0]
        assert world.trip(trip.declaration_id)["status"] == "arrived"
    finally:
        os.kill(judge, signal.SIGCONT)
    passage_id = f"P-{truck.node_id}"
    world.wait_for(lambda: len(world.all_commands_for(passage_id, 0.1)) == 2, 60)
    commands = world.all_commands_for(passage_id, 0.0)
    assert [(c.action, c.reasons) for c in commands[1:]] == [
        ("hold", ["unresolved alarm DEVICE_OFFLINE"])
    ]
    offline = [a for a in world.alarms(trip.declaration_id) if a["type"] == "DEVICE_OFFLINE"]
    assert len(offline) == 1
    assert world.trip(trip.declaration_id)["status"] == "held"

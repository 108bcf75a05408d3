"""An arrival is decided on its trip's alarms only once the judge has judged every message
of the trip that the store holds (`server.judge_marks`): the gate worker waits for it a
moment (`gates.judge_wait_s`), then holds with the reason `judging`, the trip still in
transit; the server decides it again once the judge has caught up
(`server.gates.judged`)."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from contract.ids import utc_now
from contract.payloads import EdgeMessage, GateCommand, Passage
from server import assembly
from server.alarms import AlarmQuery
from server.gates.decide import Decision
from server.gates.judged import JudgedAgain
from server.gates.service import GateService
from server.store.database import IncomingMessage
from tests.server.gates.conftest import GateWorld, passage_fields
from tests.server.gates.test_service import DEST, audit_actions, depart, release

ON_THE_WAY = (113.30, 23.41)  # (lon, lat) near the destination, on the route's corridor


def departed(world: GateWorld, api: TestClient, ago_min: float = 60) -> None:
    """The truck departed `ago_min` ago, its trip taken up by the judge (as at its next
    timer tick), released by the declaration system."""
    depart(world, ago_min=ago_min)
    world.judge_them([])
    assert release(api).status_code == 201


def unjudged_fix(world: GateWorld, ago_s: float = 30) -> IncomingMessage:
    """A fix of the truck, stored and not judged yet (the judge lags); to hand it later."""
    message = world.feed(
        "position", "TRK-1", utc_now() - timedelta(seconds=ago_s), judged=False,
        lon=ON_THE_WAY[0], lat=ON_THE_WAY[1], fix="3d", sats=9, speed_kmh=30.0,
    )  # fmt: skip
    return as_stored(message)


def as_stored(message: EdgeMessage) -> IncomingMessage:
    return IncomingMessage("position", message, message.to_json().decode(), utc_now())


def arrival(world: GateWorld, passage_id: str = "P-ARR-J", lane: str = "L1") -> Passage:
    """The truck's passage at its destination, stored (the gate's own message)."""
    msg = world.feed(
        "passage", DEST, utc_now() - timedelta(seconds=5), judged=False,
        **passage_fields(passage_id, lane=lane),
    )  # fmt: skip
    assert isinstance(msg, Passage)
    return msg


def lane_waiting(world: GateWorld, passage_id: str, lane: str = "L1") -> None:
    world.feed(
        "lane", DEST, utc_now(), judged=False,
        lane=lane, state="waiting", passage_id=passage_id, signal="red",
    )  # fmt: skip


def test_an_arrival_is_held_while_its_trip_is_not_judged(
    gate_world: GateWorld, gate_api: TestClient
) -> None:
    departed(gate_world, gate_api)
    fix = unjudged_fix(gate_world)
    command = gate_world.gates.handle_passage(arrival(gate_world))
    assert command is not None and command.action == "hold"
    assert command.reasons == [
        "the trip's alarms are not complete yet: messages of TRK-1 stored up to no. "
        f"{fix.message.seq}, judged up to no. {fix.message.seq - 1}"
    ]
    row = gate_world.gates.gates.get_passage("P-ARR-J")
    assert row is not None and row["reason_codes"] == ["judging"]
    trip = gate_world.services.store.get_trip("D-0001")
    # arrived, its decision waiting: the judge judges it still, its timers stopped
    assert trip is not None and trip.status == "arrived"
    again = JudgedAgain(gate_world.gates)
    assert again.waiting(utc_now()) == ["P-ARR-J"]
    assert again.once() == 0  # the judge has not caught up: nothing decided


def test_decided_again_once_judged_the_truck_still_waiting(
    gate_world: GateWorld, gate_api: TestClient
) -> None:
    departed(gate_world, gate_api)
    fix = unjudged_fix(gate_world)
    lane_waiting(gate_world, "P-ARR-J")
    first = gate_world.gates.handle_passage(arrival(gate_world))
    assert first is not None and first.action == "hold"
    gate_world.judge_them([fix])  # the judge catches up
    assert JudgedAgain(gate_world.gates).once() == 1
    [(_, sent)] = gate_world.recorder.sent  # (the first was returned, not published)
    assert isinstance(sent, GateCommand)
    assert (sent.passage_id, sent.action, sent.reasons) == ("P-ARR-J", "open", [])
    row = gate_world.gates.gates.get_passage("P-ARR-J")
    assert row is not None and (row["decision"], row["reason_codes"]) == ("open", [])
    assert row["command_id"] == sent.command_id
    trip = gate_world.services.store.get_trip("D-0001")
    assert trip is not None and trip.status == "released" and trip.ended_at is not None
    assert ("system", "passage.decide_again", "P-ARR-J") in audit_actions(gate_world)
    assert JudgedAgain(gate_world.gates).waiting(utc_now()) == []  # once


def test_decided_again_once_judged_the_truck_gone(
    gate_world: GateWorld, gate_api: TestClient
) -> None:
    departed(gate_world, gate_api)
    fix = unjudged_fix(gate_world)
    first = gate_world.gates.handle_passage(arrival(gate_world))
    assert first is not None
    sent_before = len(gate_world.recorder.sent)
    gate_world.judge_them([fix])
    assert JudgedAgain(gate_world.gates).once() == 1
    assert len(gate_world.recorder.sent) == sent_before  # no truck at the barrier: no command
    trip = gate_world.services.store.get_trip("D-0001")
    # released: the truck passes when it presents itself again
    assert trip is not None and trip.status == "released" and trip.ended_at is None


def test_an_officer_s_override_comes_first(gate_world: GateWorld, gate_api: TestClient) -> None:
    departed(gate_world, gate_api)
    fix = unjudged_fix(gate_world)
    gate_world.gates.handle_passage(arrival(gate_world))
    res = gate_api.post(
        "/api/v1/passages/P-ARR-J/override",
        json={"action": "hold", "comment": "inspect the seal by hand"},
    )
    assert res.status_code == 200, res.text
    gate_world.judge_them([fix])
    again = JudgedAgain(gate_world.gates)
    assert again.waiting(utc_now()) == [] and again.once() == 0
    assert again.decide_again("P-ARR-J") is None  # the officer's decision stands


def inline_gates(world: GateWorld) -> GateService:
    """The gate worker's service (`inline`: it waits for the judge)."""
    svc = world.services
    return assembly.gate_service(
        svc.config, svc.store, svc.geography, world.recorder, svc.alarms, svc.lock_secrets,
        inline=True,
    )  # fmt: skip


def test_the_gate_worker_waits_for_a_judge_that_catches_up(
    gate_world: GateWorld, gate_api: TestClient
) -> None:
    departed(gate_world, gate_api)
    fix = unjudged_fix(gate_world)
    catch_up = threading.Timer(0.2, gate_world.judge_them, ([fix],))
    catch_up.start()
    began = time.monotonic()
    command = inline_gates(gate_world).handle_passage(arrival(gate_world))
    catch_up.join()
    assert command is not None and (command.action, command.reasons) == ("open", [])
    assert 0.2 <= time.monotonic() - began < 5
    trip = gate_world.services.store.get_trip("D-0001")
    assert trip is not None and trip.status == "released"


def test_the_gate_worker_waits_at_most_judge_wait_s(
    gate_world: GateWorld, gate_api: TestClient
) -> None:
    departed(gate_world, gate_api)
    unjudged_fix(gate_world)
    gates = inline_gates(gate_world)
    began = time.monotonic()
    command = gates.handle_passage(arrival(gate_world))
    waited = time.monotonic() - began
    assert command is not None and command.action == "hold"
    wait_s = gate_world.services.config.gates.judge_wait_s
    assert wait_s <= waited < wait_s + 5
    row = gate_world.gates.gates.get_passage("P-ARR-J")
    assert row is not None and row["reason_codes"] == ["judging"]


def test_the_time_limit_does_not_run_out_while_the_decision_waits(
    gate_world: GateWorld, gate_api: TestClient
) -> None:
    """The truck arrived in time; the judge's timers must not count the wait against it."""
    departed(gate_world, gate_api, ago_min=119)  # the 120 min limit: a minute after arrival
    fix = unjudged_fix(gate_world)
    gate_world.gates.handle_passage(arrival(gate_world))
    judge = gate_world.judge
    assert judge is not None
    judge.tick(utc_now() + timedelta(hours=1))  # long past the limit: no TRANSIT_OVERDUE
    gate_world.judge_them([fix])
    decision = JudgedAgain(gate_world.gates).decide_again("P-ARR-J")
    assert decision is not None and (decision.action, decision.reasons) == ("open", ())
    found, _ = gate_world.services.alarms.find(AlarmQuery(trip_id="D-0001"))
    assert {"TRANSIT_OVERDUE", "DEVICE_OFFLINE"}.isdisjoint(a.type for a in found)


def test_a_correction_once_judged_moves_the_waiting_trip(
    gate_world: GateWorld, gate_api: TestClient
) -> None:
    departed(gate_world, gate_api)
    fix = unjudged_fix(gate_world)
    gate_world.gates.handle_passage(arrival(gate_world))
    gate_world.judge_them([fix])
    res = gate_api.post(
        "/api/v1/passages/P-ARR-J/correct",
        json={"plate": "粤A·D3K21", "comment": "plate read again by hand"},
    )
    assert res.status_code == 200, res.text
    assert (res.json()["decision"], res.json()["reason_codes"]) == ("open", [])
    trip = gate_world.services.store.get_trip("D-0001")
    # the truck had left the lane: released, it passes when it presents itself again
    assert trip is not None and trip.status == "released" and trip.ended_at is None
    assert JudgedAgain(gate_world.gates).waiting(utc_now()) == []


def test_one_passage_that_fails_leaves_the_others_decided(
    gate_world: GateWorld, gate_api: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    departed(gate_world, gate_api)
    fix = unjudged_fix(gate_world)
    gate_world.gates.handle_passage(arrival(gate_world, "P-ARR-J"))
    gate_world.gates.handle_passage(arrival(gate_world, "P-ARR-K", lane="L2"))
    gate_world.judge_them([fix])
    again = JudgedAgain(gate_world.gates)
    real = again.decide_again

    def failing_first(passage_id: str) -> Decision | None:
        if passage_id == "P-ARR-J":
            raise RuntimeError("signing device unplugged")
        return real(passage_id)

    monkeypatch.setattr(again, "decide_again", failing_first)
    assert again.waiting(utc_now()) == ["P-ARR-J", "P-ARR-K"]
    assert again.once() == 1
    row = gate_world.gates.gates.get_passage("P-ARR-K")
    assert row is not None and row["decision"] == "open"

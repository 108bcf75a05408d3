"""Late data and the destination gate, through the real server and broker.

- A truck drives through a coverage gap during which it leaves its corridor. Its agent
  keeps everything in the outbox; on reconnecting it sends live messages first and the
  backlog (`replayed: true`) between them (edge/link.py), so the server receives the
  deviation after later positions. The deviation is still found, at its fix times.
- The deviated truck is held at the Baiyun gate with its reasons. It comes straight
  after the reconnect, while the judge still holds its live messages behind the number
  its agent reserved for a last will (never sent): the trip is not all judged, and it
  is held with that reason too; once the judge gives the number up (its hold), the
  passage is decided again, held for the deviation alone (docs/gates.md#judged-first).
  Once the officer has acknowledged the (rule-cleared) alarm, it passes when it
  presents itself again.
- A truck that reaches the gate before its release record is held; the record then
  releases the trip without commanding the gate (docs/gates.md), and the truck passes
  on its next presentation.
"""

from __future__ import annotations

import json
from typing import Any

from contract.ids import parse_ts
from server.rules.profiles import load_profiles
from tests.server.scenarios.harness import World
from tests.server.scenarios.tracks import DEMO, Message, demo_geography

PROFILE = load_profiles(DEMO / "profiles.yaml")["general"]
GEO = demo_geography()
ROUTE = GEO.route("R-HP-BY")
CORRIDOR_M = ROUTE.corridor_m * PROFILE.corridor_factor


def clearly_outside(m: Message) -> bool:
    off = GEO.distance_to_route_m("R-HP-BY", m.payload["lon"], m.payload["lat"])
    return off - CORRIDOR_M > PROFILE.uncertainty_k * m.payload["hdop"] * PROFILE.uere_m


def as_sent_after_reconnect(live: list[Message], backlog: list[Message]) -> list[Message]:
    """Live messages first, the backlog in batches between them (edge.link._send)."""
    order = live[:8] + backlog[:60] + live[8:16] + backlog[60:] + live[16:]
    assert len(order) == len(live) + len(backlog)
    return order


def test_deviation_in_a_replayed_backlog(world: World) -> None:
    truck, declared = world.begin("TRK-GAP", seed=51)
    truck.along(10_000, 70)
    assert world.run(truck) == []
    # out of coverage: the truck detours and comes back; all of it waits in the outbox
    truck.sidestep(1_500, 3_000, 50)
    truck.along(25_000, 70)
    backlog = [m.replayed() for m in truck.take()]
    # coverage again: the agent reconnects (a will seq reserved, `online`) and goes on
    truck.next_seq += 1
    truck.availability("online")
    truck.along(29_000, 70)
    live = truck.take()
    world.publish(as_sent_after_reconnect(live, backlog))
    world.settle()

    alarms = world.alarms(declared.declaration_id)
    assert [(a["type"], a["count"]) for a in alarms] == [("ROUTE_DEVIATION", 1)]
    alarm = alarms[0]
    out = next(m for m in backlog if m.channel == "position" and m.payload["fix"] != "none"
               and clearly_outside(m))  # fmt: skip
    detail = json.loads(alarm["detail"])
    assert detail["outside_since"] == out.ts.isoformat()  # judged in fix-time order
    raised = parse_ts(alarm["first_at"])
    elapsed = (raised - out.ts).total_seconds()
    assert PROFILE.deviation_persistence_s <= elapsed <= PROFILE.deviation_persistence_s + 11
    cleared = parse_ts(alarm["cleared_at"])
    assert backlog[0].ts < raised < cleared < backlog[-1].ts < live[0].ts

    # the stored track has the replayed positions in their place, flagged
    track = world.trip(declared.declaration_id, track=1)["track"]
    assert [p["ts"] for p in track] == sorted(p["ts"] for p in track)
    replayed = {p["seq"] for p in track if p["replayed"]}
    assert replayed == {m.seq for m in backlog if m.channel == "position"
                        and m.payload["fix"] != "none"}  # fmt: skip

    # arrival: released by customs, but held at the gate for the deviation
    truck.along(ROUTE.length_m, 70).park(20)
    world.release(declared, truck.now)
    command = world.arrive(truck, declared)
    assert command.action == "hold"
    assert command.reasons[0] == "unresolved alarm ROUTE_DEVIATION"
    assert command.reasons[1:] == [
        "the trip's alarms are not complete yet: messages of TRK-GAP stored up to no. "
        f"{truck.next_seq - 1}, judged up to no. {live[0].seq - 2}"
    ]
    # the judge gives the reserved number up after its hold (30 s), judges the rest, and
    # the server decides the passage again (the truck not waiting: no command)
    passage_id = command.passage_id
    world.wait_for(
        lambda: (
            world.api.get(f"/passages/{passage_id}").json()["reason_codes"] == ["unresolved_alarm"]
        ),
        60,
    )
    trip = world.trip(declared.declaration_id)
    assert trip["status"] == "held"
    assert [(a["type"], a["status"]) for a in trip["alarms"]] == [
        ("ROUTE_DEVIATION", "cleared_unack")
    ]
    assert [(p["phase"], p["decision"], p["reasons"]) for p in trip["passages"]] == [
        ("departure", "open", []),
        ("arrival", "hold", ["unresolved alarm ROUTE_DEVIATION"]),
    ]
    # the officer looks into it and acknowledges; the truck presents itself again
    res = world.officer.post(
        f"/alarms/{alarm['id']}/ack", json={"comment": "detour: bridge closed, confirmed"}
    )
    assert res.status_code == 200 and res.json()["status"] == "cleared_ack", res.text
    truck.park(120)
    again = world.arrive(truck, declared)
    assert (again.action, again.reasons) == ("open", [])
    trip = world.trip(declared.declaration_id)
    assert trip["status"] == "released" and parse_ts(trip["ended_at"]) == truck.now


def audit(world: World, object_id: str) -> list[dict[str, Any]]:
    supervisor = world.login("supervisor")
    try:
        res = supervisor.get("/audit", params={"object_id": object_id, "order": "asc"})
        assert res.status_code == 200, res.text
        entries: list[dict[str, Any]] = res.json()
        assert supervisor.get("/audit/verify").json()["ok"] is True
        return entries
    finally:
        supervisor.close()


def test_release_record_after_the_hold(world: World) -> None:
    truck, declared = world.begin("TRK-EARLY", seed=52)
    truck.along(ROUTE.length_m, 72).park(20)
    held = world.arrive(truck, declared)  # before customs has released the goods
    assert (held.action, held.reasons) == ("hold", ["no electronic release record"])
    assert world.trip(declared.declaration_id)["status"] == "held"

    truck.park(300)  # waiting aside
    answer = world.release(declared, truck.now)
    assert (answer["trip_status"], answer["hold_reasons"]) == ("released", [])
    trip = world.trip(declared.declaration_id)
    assert trip["status"] == "released" and trip["ended_at"] is None
    # the gate was not commanded behind the officer's back
    assert [c.action for c in world.all_commands_for(held.passage_id, wait_s=1.5)] == ["hold"]
    actions = [(e["actor"], e["action"]) for e in audit(world, declared.declaration_id)]
    assert actions == [
        ("declaration-system", "declaration.create"),
        ("declaration-system", "declaration.release"),
        ("system", "trip.release"),
    ]
    # the truck presents itself again and passes
    truck.park(60)
    command = world.arrive(truck, declared)
    assert (command.action, command.reasons) == ("open", [])
    trip = world.trip(declared.declaration_id)
    assert trip["status"] == "released" and parse_ts(trip["ended_at"]) == truck.now
    assert [p["decision"] for p in trip["passages"]] == ["open", "hold", "open"]
    assert trip["alarms"] == []

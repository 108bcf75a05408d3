"""Each incident of docs/contract.md's alarm table, through the real server and broker.

Every scenario drives a truck on a demo route from its origin gate, stages one incident
and checks, on the alarms the REST API reports for its trip:

- the alarm is raised exactly once (one alarm, `count` 1) and no other type is raised
  except the ones the incident implies (a forbidden zone 5 km off the route is also a
  route deviation);
- it is raised within its persistence time, measured on the fix times of the
  messages (the profile's threshold, plus at most one reporting interval);
- it is cleared when its clear condition holds, at the fix time the rule says — or,
  for the types only an officer clears, it stays active while the trip goes on.

Thresholds come from `config/demo/profiles.yaml` (the server runs with it).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest

from contract.ids import parse_ts, utc_now
from server.rules.profiles import load_profiles
from tests.server.scenarios.harness import TruckLink, World, container_number
from tests.server.scenarios.tracks import DEMO, Message, Truck, demo_geography, route_point, zone

PROFILE = load_profiles(DEMO / "profiles.yaml")["general"]
#: The agent reports at least every 10 s (edge.truck.policy defaults): a rule that fires
#: on the first report after its threshold does so within this much more.
REPORT_SLACK_S = 11.0
GEO = demo_geography()


# ---------------------------------------------------------------- helpers
def the_alarm(alarms: list[dict[str, Any]], alarm_type: str) -> dict[str, Any]:
    """The trip's only alarm of `alarm_type`, raised once."""
    found = [a for a in alarms if a["type"] == alarm_type]
    assert len(found) == 1, f"{alarm_type}: {found}"
    assert found[0]["count"] == 1, found[0]
    return found[0]


def types(alarms: list[dict[str, Any]]) -> set[str]:
    return {a["type"] for a in alarms}


def at(alarm: dict[str, Any], key: str = "first_at") -> datetime:
    return parse_ts(alarm[key])


def detail(alarm: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(alarm["detail"])
    return found


def assert_after(moment: datetime, since: datetime, seconds: float) -> None:
    """`moment` is `seconds` after `since`, give or take one reporting interval."""
    elapsed = (moment - since).total_seconds()
    assert seconds <= elapsed <= seconds + REPORT_SLACK_S, (elapsed, seconds)


def first_fix(truck: Truck, after: datetime, test: Callable[[Message], bool]) -> Message:
    for m in truck.fixes():
        if m.ts > after and test(m):
            return m
    raise AssertionError("no such fix")


def usable(m: Message) -> bool:
    return m.payload["sats"] >= PROFILE.min_sats and m.payload["hdop"] <= PROFILE.max_hdop


def uncertainty_m(m: Message) -> float:
    return PROFILE.uncertainty_k * m.payload["hdop"] * PROFILE.uere_m


def off_route_m(m: Message, route_id: str = "R-HP-BY") -> float:
    return GEO.distance_to_route_m(route_id, m.payload["lon"], m.payload["lat"])


CORRIDOR_M = GEO.route("R-HP-BY").corridor_m * PROFILE.corridor_factor


def clearly_outside(m: Message) -> bool:
    return usable(m) and off_route_m(m) - CORRIDOR_M > uncertainty_m(m)


def inside(m: Message) -> bool:
    return usable(m) and off_route_m(m) <= CORRIDOR_M


# ---------------------------------------------------------------- geofence rules
def test_route_deviation(world: World) -> None:
    truck, _ = world.begin("TRK-DEV", seed=21)
    truck.along(12_000, 70)
    left = truck.now
    truck.sidestep(1_500, 3_000, 50)  # a parallel road 1.5 km away, 3 km long
    back = truck.now
    truck.along(truck.s + 6_000, 70)  # type: ignore[operator]
    alarms = world.run(truck)

    assert types(alarms) == {"ROUTE_DEVIATION"}
    alarm = the_alarm(alarms, "ROUTE_DEVIATION")
    out = first_fix(truck, left, clearly_outside)
    assert detail(alarm)["outside_since"] == out.ts.isoformat()
    assert_after(at(alarm), out.ts, PROFILE.deviation_persistence_s)
    assert alarm["severity"] == "major" and alarm["status"] == "cleared_unack"
    back_in = first_fix(truck, back - timedelta(minutes=3), inside)
    assert_after(at(alarm, "cleared_at"), back_in.ts, PROFILE.deviation_clear_s)


def test_forbidden_zone(world: World) -> None:
    forbidden = zone("Z-FORBID-1")
    truck, _ = world.begin("TRK-FORBID", seed=22)
    truck.along(20_000, 70)
    centre = forbidden.polygon.centroid
    truck.towards(centre.x, centre.y, 50).park(120)
    truck.rejoin(21_000, 50).along(25_000, 70)
    alarms = world.run(truck)

    # 5 km off the corridor, so a deviation too; each exactly once
    assert types(alarms) == {"FORBIDDEN_ZONE", "ROUTE_DEVIATION"}
    alarm = the_alarm(alarms, "FORBIDDEN_ZONE")
    assert alarm["severity"] == "critical" and detail(alarm)["zone_id"] == "Z-FORBID-1"

    def deep(m: Message) -> bool:
        return usable(m) and forbidden.depth_m(m.payload["lon"], m.payload["lat"]) > uncertainty_m(
            m
        )

    def outside_zone(m: Message) -> bool:
        return forbidden.depth_m(m.payload["lon"], m.payload["lat"]) < 0

    entered = first_fix(truck, truck.start, deep)
    assert_after(at(alarm), entered.ts, PROFILE.zone_persistence_s)
    left = first_fix(truck, at(alarm) + timedelta(seconds=100), outside_zone)
    assert_after(at(alarm, "cleared_at"), left.ts, PROFILE.zone_clear_s)
    the_alarm(alarms, "ROUTE_DEVIATION")


def test_unplanned_stop(world: World) -> None:
    truck, _ = world.begin("TRK-STOP", seed=23)
    truck.along(9_000, 70)
    halted = truck.now
    truck.park(PROFILE.max_stop_s + 120)  # on the road, no stop zone
    moved_on = truck.now
    truck.along(15_000, 70)
    alarms = world.run(truck)

    assert types(alarms) == {"UNPLANNED_STOP"}
    alarm = the_alarm(alarms, "UNPLANNED_STOP")
    anchor = parse_ts(detail(alarm)["stopped_since"])
    stopped = first_fix(truck, halted, lambda m: m.payload["speed_kmh"] <= 5.0 and usable(m))
    assert anchor == stopped.ts
    assert_after(at(alarm), anchor, PROFILE.max_stop_s)
    assert_after(at(alarm, "cleared_at"), moved_on, 0.0)


def test_overspeed(world: World) -> None:
    truck, _ = world.begin("TRK-FAST", seed=24)
    truck.along(10_000, 75)
    fast = truck.now
    truck.along(15_000, 118)  # ~150 s at 118 km/h (limit 100 + tolerance 5)
    slow = truck.now
    truck.along(20_000, 75)
    alarms = world.run(truck)

    assert types(alarms) == {"OVERSPEED"}
    alarm = the_alarm(alarms, "OVERSPEED")
    limit = PROFILE.speed_limit_kmh + PROFILE.speed_tolerance_kmh
    over = first_fix(truck, fast, lambda m: m.payload["speed_kmh"] > limit)
    assert_after(at(alarm), over.ts, PROFILE.speed_persistence_s)
    under = first_fix(truck, slow - timedelta(seconds=1), lambda m: m.payload["speed_kmh"] <= limit)
    assert_after(at(alarm, "cleared_at"), under.ts, PROFILE.speed_clear_s)


def test_position_implausible_is_flagged_not_followed(world: World) -> None:
    truck, _ = world.begin("TRK-SPOOF", seed=25)
    truck.along(8_000, 70)
    spoofed = truck.now
    truck.spoof(*route_point(GEO.route("R-NS-BY"), 1_000.0), fixes=3)  # Nansha, 40 km away
    truck.along(14_000, 70)
    alarms = world.run(truck)

    # not followed: no deviation although three fixes lay 40 km off the corridor
    assert types(alarms) == {"POSITION_IMPLAUSIBLE"}
    alarm = the_alarm(alarms, "POSITION_IMPLAUSIBLE")
    assert at(alarm) == first_fix(truck, spoofed, lambda m: True).ts
    assert detail(alarm)["jump_m"] > 30_000
    assert alarm["status"] == "active_unack"  # an officer decides


def test_gnss_lost_outside_a_tunnel(world: World) -> None:
    truck, _ = world.begin("TRK-JAM", seed=26)
    truck.along(6_000, 70)
    truck.no_fix(400, speed_kmh=60)  # a jammer in the cab
    truck.along(truck.s + 3_000, 70)  # type: ignore[operator]
    alarms = world.run(truck)

    assert types(alarms) == {"GNSS_LOST"}
    alarm = the_alarm(alarms, "GNSS_LOST")
    positions = truck.positions()
    lost = next(
        i for i, m in enumerate(positions) if m.ts > truck.start and m.payload["fix"] == "none"
    )
    last_valid = positions[lost - 1]
    assert detail(alarm)["last_valid_fix_at"] == last_valid.ts.isoformat()
    assert detail(alarm)["near_tunnel"] is False
    assert_after(at(alarm), last_valid.ts, PROFILE.gnss_loss_s)
    back = next(m for m in positions[lost:] if m.payload["fix"] != "none")
    assert at(alarm, "cleared_at") == back.ts


def test_transit_overdue(world: World) -> None:
    truck, declared = world.begin("TRK-LATE", seed=27, time_limit_min=30)
    started = truck.now
    truck.along(GEO.route("R-HP-BY").length_m, 60).park(30)  # ~47 min for 47 km
    world.release(declared, truck.now)
    alarms = world.run(truck)

    assert types(alarms) == {"TRANSIT_OVERDUE"}
    alarm = the_alarm(alarms, "TRANSIT_OVERDUE")
    deadline = started + timedelta(minutes=30, seconds=PROFILE.overdue_grace_s)
    assert_after(at(alarm), deadline, 0.0)
    assert alarm["status"] == "active_unack"
    # the clear condition: the trip ends at its destination gate (held: it was late)
    command = world.arrive(truck, declared)
    assert command.action == "hold"
    assert "unresolved alarm TRANSIT_OVERDUE" in command.reasons
    assert any(r.startswith("time limit of 30 min exceeded by") for r in command.reasons)
    ended = the_alarm(world.alarms(declared.declaration_id), "TRANSIT_OVERDUE")
    assert ended["status"] == "cleared_unack"
    assert at(ended, "cleared_at") == truck.now


# ---------------------------------------------------------------- lock rules
def test_lock_opened(world: World) -> None:
    truck, _ = world.begin("TRK-OPEN", seed=31)
    truck.along(15_000, 70).park(20)
    opened = truck.lock("unsealed", "unsealed")  # opened on the road, far from Baiyun
    truck.along(22_000, 70)
    alarms = world.run(truck)

    assert types(alarms) == {"LOCK_OPENED"}
    alarm = the_alarm(alarms, "LOCK_OPENED")
    assert at(alarm) == opened.ts and alarm["severity"] == "critical"
    assert alarm["status"] == "active_unack"  # never cleared by a rule
    assert alarm["position"]["coordinates"] == [opened.payload["lon"], opened.payload["lat"]]


def test_lock_tamper(world: World) -> None:
    truck, _ = world.begin("TRK-TAMPER", seed=32)
    truck.along(15_000, 70)
    tampered = truck.lock("sealed", "shell_tampered")
    truck.along(22_000, 70)
    alarms = world.run(truck)

    assert types(alarms) == {"LOCK_TAMPER"}
    alarm = the_alarm(alarms, "LOCK_TAMPER")
    assert at(alarm) == tampered.ts and alarm["status"] == "active_unack"
    assert detail(alarm)["event"] == "shell_tampered"


def test_forged_and_replayed_lock_reports(world: World) -> None:
    """A tampered gateway (it holds no lock secret) makes up a "sealed" report, and later
    sends the lock's own honest report again: each raises the critical LOCK_REPORT_FORGED;
    the lock's honest reports around them raise nothing."""
    truck, _ = world.begin("TRK-FORGE", seed=34)
    truck.along(10_000, 70)
    honest = truck.lock("sealed")
    truck.along(12_000, 70)
    truck.lock_secret = "the-gateway-guesses-a-key"
    forged = truck.lock("sealed")
    truck.lock_secret, truck.lock_counter = "", truck.lock_counter - 1  # the lock's own again
    truck.along(15_000, 70)
    kept = {k: v for k, v in honest.payload.items() if k not in ("node_id", "seq")}
    truck._emit("lock", **kept)  # the replay: a new seq, the old ts, counter and MAC
    truck.along(22_000, 70)
    alarms = world.run(truck)

    assert types(alarms) == {"LOCK_REPORT_FORGED"}
    (alarm,) = alarms  # one alarm, raised twice: `the_alarm` wants a single raise
    assert alarm["severity"] == "critical" and alarm["count"] == 2
    # the replay is dated as the report it repeats; the forgery is the later one
    assert (at(alarm), at(alarm, "last_at")) == (honest.ts, forged.ts)
    assert detail(alarm)["reason"] in ("bad_mac", "replayed")
    assert alarm["status"] == "active_unack"


def test_lock_low_battery(world: World) -> None:
    truck, _ = world.begin("TRK-BATT", seed=33)
    truck.battery_pct = 26.0
    truck.along(8_000, 70)
    truck.battery_pct = 24.0  # a lock reports whole percent
    low = truck.lock(event="low_battery")
    truck.along(12_000, 70)  # further status reports, still low: no repeat
    truck.battery_pct = 95.0  # the driver swapped the battery pack
    swapped = truck.lock()
    truck.along(15_000, 70)
    alarms = world.run(truck)

    assert types(alarms) == {"LOCK_LOW_BATTERY"}
    alarm = the_alarm(alarms, "LOCK_LOW_BATTERY")
    assert at(alarm) == low.ts and alarm["severity"] == "warning"
    assert at(alarm, "cleared_at") == swapped.ts


def test_lock_wrong_password(world: World) -> None:
    truck, _ = world.begin("TRK-PASSWD", seed=34)
    truck.along(10_000, 70).park(30)
    tries = []
    for _ in range(PROFILE.wrong_password_count):
        tries.append(truck.lock(event="wrong_password"))
        truck.park(60)
    truck.along(15_000, 70)
    alarms = world.run(truck)

    assert types(alarms) == {"LOCK_WRONG_PASSWORD"}
    alarm = the_alarm(alarms, "LOCK_WRONG_PASSWORD")
    assert at(alarm) == tries[-1].ts and alarm["status"] == "active_unack"
    assert detail(alarm)["count_in_window"] == PROFILE.wrong_password_count


# ---------------------------------------------------------------- gates
def test_gate_mismatch(world: World) -> None:
    declared_pair = [container_number(4242), container_number(4243)]
    truck, declared = world.begin("TRK-SWAP", seed=35, containers=declared_pair)
    truck.along(GEO.route("R-HP-BY").length_m, 70).park(20)
    world.release(declared, truck.now)
    world.run(truck)
    # one of the two declared containers was swapped on the way
    swapped = [declared_pair[0], container_number(9999)]
    passage = world.passage(declared.destination_gate, truck.now, swapped, declared.plate)
    command = world.command_for(passage)
    assert command.action == "hold"
    assert command.reasons == [
        f"container {swapped[1]} is not declared on {declared.declaration_id}",
        f"declared container(s) {declared_pair[1]} not seen",
    ]
    alarms = world.alarms(declared.declaration_id)
    assert types(alarms) == {"GATE_MISMATCH"}
    alarm = the_alarm(alarms, "GATE_MISMATCH")
    assert at(alarm) == truck.now and alarm["status"] == "active_unack"
    assert world.trip(declared.declaration_id)["status"] == "held"

    # a truck nobody declared: held, and one alarm for the gate, not one per truck
    stranger = world.passage("G-BAIYUN-1", truck.now, [container_number(777)], "粤B·00000")
    assert world.command_for(stranger).action == "hold"
    again = world.passage("G-BAIYUN-1", truck.now, [container_number(778)], "粤B·00001")
    assert world.command_for(again).action == "hold"
    gate_alarm = the_alarm_of_gate(world, "G-BAIYUN-1")
    assert gate_alarm["count"] == 2 and gate_alarm["status"] == "active_unack"


def the_alarm_of_gate(world: World, gate: str) -> dict[str, Any]:
    found = world.alarms(f"gate:{gate}")
    assert [a["type"] for a in found] == ["GATE_MISMATCH"]
    return found[0]


# ---------------------------------------------------------------- the gateway falls silent
@pytest.mark.slow  # ~40 s on the server's clock
def test_device_offline(world: World) -> None:
    """DEVICE_OFFLINE is judged on the server's clock (the timers) from when the server
    last RECEIVED a message, whatever the messages' own times: a gateway that loses its
    connection (the broker publishes its last will) is raised; one whose last messages
    are dated `silence_s` ago, and one whose departure was, are not silent — the server
    received them just now (silence by receive time: tests/server/test_judge.py)."""
    silence = PROFILE.silence_s
    now = utc_now().replace(microsecond=0)
    # the last will: composed when the agent connected, 200 s ago
    willing = Truck("TRK-WILL", "R-HP-BY", now - timedelta(seconds=200), seed=41, next_seq=1)
    link = TruckLink(world.broker, willing)
    willing.lock("sealed", "sealed")
    willing.park(60)
    willing_trip = world.declare(willing)
    link.publish(willing.take())
    world.settle()
    assert world.pass_gate(willing_trip, willing_trip.origin_gate, willing.now).action == "open"
    willing.along(1_000, 40)  # its last message ~50 s ago
    link.publish(willing.take())
    # silent: its last report lies `silence` seconds before now + ~5 s
    quiet, quiet_trip = world.begin(
        "TRK-QUIET", start=now - timedelta(seconds=silence + 75), seed=42
    )
    quiet.along(170, 30)
    world.publish(quiet.take())
    # mute: dead from the departure gate on, which it passed `silence` - 5 s ago
    _mute, mute_trip = world.begin("TRK-MUTE", start=now - timedelta(seconds=silence + 55), seed=43)
    world.settle()
    judged = utc_now()  # the server has all three trips, and knows what they sent
    link.cut()

    def raised(trip: str) -> dict[str, Any] | None:
        found = [a for a in world.alarms(trip) if a["type"] == "DEVICE_OFFLINE"]
        return found[0] if found else None

    world.wait_for(lambda: raised(willing_trip.declaration_id), 40, interval=0.5)
    cut_at = utc_now()
    will_alarm = the_alarm(world.alarms(willing_trip.declaration_id), "DEVICE_OFFLINE")
    assert types(world.alarms(will_alarm["trip_id"])) == {"DEVICE_OFFLINE"}
    # received well under `silence_s` ago: not silent, whatever their messages' dates
    assert raised(quiet_trip.declaration_id) is None
    assert raised(mute_trip.declaration_id) is None
    # the will: raised when the connection was lost, after everything it had sent
    assert detail(will_alarm)["reason"] == "last will: offline"
    assert willing.messages[-1].ts < at(will_alarm) <= cut_at
    assert utc_now() - judged < timedelta(seconds=silence)  # the premise of the two above

    # back: the quiet one reports again; the other agent reconnects (a new will reserved,
    # so the server holds what follows that gap in its seqs for up to 30 s)
    # Their clocks catch up with the server's, to the next whole second: the will was
    # timed by its arrival (milliseconds), and `online` must come after it, not in the
    # same second before it (then it would be judged first and clear nothing).
    for truck in (quiet, willing):
        truck.clock = float(math.ceil((utc_now() - truck.start).total_seconds()))
    quiet.park(1)
    world.publish(quiet.take())
    again = TruckLink(world.broker, willing)
    willing.park(5)
    link_back = next(m for m in willing.messages[::-1] if m.channel == "availability")
    again.publish(willing.take())
    try:
        world.wait_for(
            lambda: (
                not any(
                    a["status"].startswith("active")
                    for a in world.alarms(willing_trip.declaration_id)
                    + world.alarms(quiet_trip.declaration_id)
                )
            ),
            45,
            interval=0.5,
        )
    finally:
        again.close()
    will_alarm = the_alarm(world.alarms(willing_trip.declaration_id), "DEVICE_OFFLINE")
    assert at(will_alarm, "cleared_at") == link_back.ts
    assert raised(mute_trip.declaration_id) is None  # received under `silence_s` ago

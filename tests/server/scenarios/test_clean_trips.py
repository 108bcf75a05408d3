"""Clean trips on the demo routes raise nothing and are released at the destination gate.

Each truck leaves its origin gate, drives its declared route with realistic GNSS noise
(HDOP-scaled, multipath jumps, an urban canyon), waits in traffic outside any stop
zone, rests in the allowed service areas longer than any stop limit, drives slowly
through the Pearl River tunnel without a fix for longer than the open-road allowance,
and presents itself at the Baiyun gate with its release record on file.
"""

from __future__ import annotations

import itertools

from contract.ids import utc_now
from tests.server.scenarios.harness import World
from tests.server.scenarios.tracks import Truck, interleave, zone

NS_SA = zone("Z-STOP-NS-SA").polygon
TUNNEL = zone("Z-TUNNEL-NS").polygon
URBAN = zone("Z-URBAN-TH").polygon
AIRPORT_SA = zone("Z-STOP-AIRPORT-SA").polygon


def nansha_trip(truck: Truck, seed_speed: float) -> Truck:
    """Nansha port → Baiyun: service area, tunnel in a jam, Tianhe, airport service area."""
    v = seed_speed
    truck.along(2_500, 35).along_to(NS_SA, v).park(1_300)  # rest: longer than max_stop_s
    truck.along(30_000, v + 5).park(240)  # a jam at a toll booth, outside any stop zone
    truck.along_to(TUNNEL, v, "start").along_to(TUNNEL, 25, "end")  # ~5.6 min without fix
    truck.along_to(URBAN, 50, "start").along_to(URBAN, 50, "end")  # under the 60 km/h limit
    truck.along(70_000, v + 8).along_to(AIRPORT_SA, v).park(1_000)
    return truck.along(truck.route.length_m, 40).park(30)


def huangpu_trip(truck: Truck, seed_speed: float) -> Truck:
    """Huangpu New Port → Baiyun: a traffic stop, then the airport service area."""
    v = seed_speed
    truck.along(1_500, 30).along(18_000, v).park(300)  # red lights and a jam
    truck.along_to(AIRPORT_SA, v + 5).park(1_900)  # a long rest where resting is allowed
    return truck.along(truck.route.length_m, 40).park(30)


def test_clean_trips_raise_nothing_and_are_released(world: World) -> None:
    start = utc_now().replace(microsecond=0)
    plan = [  # node, route, credit, build
        ("TRK-CLEAN-NS1", "R-NS-BY", "general", lambda t: nansha_trip(t, 72)),
        ("TRK-CLEAN-NS2", "R-NS-BY", "dishonest", lambda t: nansha_trip(t, 66)),
        ("TRK-CLEAN-HP1", "R-HP-BY", "general", lambda t: huangpu_trip(t, 68)),
        ("TRK-CLEAN-HP2", "R-HP-BY", "advanced", lambda t: huangpu_trip(t, 78)),
    ]
    trucks, declared = [], []
    for seed, (node, route, credit, _) in enumerate(plan):
        truck = Truck(node, route, start, seed=seed + 11)
        truck.lock("sealed", "sealed")
        truck.park(90 + 20 * seed)  # queueing in the origin site
        declaration = world.declare(truck, credit=credit)
        world.depart(truck, declaration)
        trucks.append(truck)
        declared.append(declaration)
    for truck, (_, _, _, build) in zip(trucks, plan, strict=True):
        build(truck)
    sent = world.publish(interleave(*trucks))
    world.settle()

    assert sent > 2_000
    for truck, declaration in zip(trucks, declared, strict=True):
        fixes = truck.fixes()
        assert fixes[0].ts < truck.now and len(fixes) > 300
        assert world.alarms(declaration.declaration_id) == [], truck.node_id
        assert world.trip(declaration.declaration_id)["status"] == "in_transit"
    # the tunnel really hid the sky for longer than the open-road allowance (180 s)
    fixes = trucks[0].fixes()
    gaps = [(b.ts - a.ts).total_seconds() for a, b in itertools.pairwise(fixes)]
    assert max(gaps) > 240

    for truck, declaration in zip(trucks, declared, strict=True):
        world.release(declaration, truck.now)
        command = world.arrive(truck, declaration)
        if declaration.credit == "dishonest":
            assert command.action == "hold"
            assert command.reasons == ["the enterprise is in the dishonest class (失信)"]
        else:
            assert (command.action, command.reasons) == ("open", []), truck.node_id
        trip = world.trip(declaration.declaration_id)
        assert trip["status"] == ("held" if declaration.credit == "dishonest" else "released")
        assert world.alarms(declaration.declaration_id) == []

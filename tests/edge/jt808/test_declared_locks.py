"""A cellular lock's node from the declarations: the registry lists the lock without a
node, and the open declaration that names its lock id says which truck it is on."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import ValidationError

from contract import topics
from contract.cellular_registry import (
    CellularRegistry,
    DeclaredLocks,
    map_declared_locks,
    phone_key,
)
from firmware_stubs.jt808_terminal import Jt808Terminal
from tests.edge.conftest import Collector
from tests.edge.jt808.conftest import (
    LOCK2_ID,
    LOCK2_PHONE,
    LOCK_ID,
    LOCK_PHONE,
    NODE,
    GatewayFactory,
    lock_report,
    wait_until,
)

FLEET = ["TRK-FLEET-1", "TRK-FLEET-2"]
#: LOCK_ID fixed to NODE by configuration; LOCK2_ID on whichever truck is declared.
REGISTRY = {
    "devices": [
        {"phone": LOCK_PHONE, "terminal_id": "EL00101", "node_id": NODE, "lock_id": LOCK_ID},
        {"phone": LOCK2_PHONE, "lock_id": LOCK2_ID},
    ],
    "fleet": FLEET,
}


def registry() -> CellularRegistry:
    return CellularRegistry.model_validate(REGISTRY)


def test_a_declared_lock_maps_to_the_declarations_truck() -> None:
    mapping, problems = map_declared_locks(
        registry(),
        [
            DeclaredLocks("T-1", "TRK-FLEET-2", (LOCK2_ID, "EL-SERIAL-9")),  # a serial lock too
            DeclaredLocks("T-2", NODE, (LOCK_ID,)),  # the configured node: nothing to map
        ],
    )
    assert (mapping, problems) == ({LOCK2_ID: "TRK-FLEET-2"}, [])
    devices = registry().mapped(mapping)
    assert {d.lock_id: d.node for d in devices.values()} == {
        LOCK_ID: NODE,
        LOCK2_ID: "TRK-FLEET-2",
    }
    assert registry().nodes() == [NODE, *FLEET]  # the broker ACL's and the subscriptions'


def test_conflicts_map_nothing_and_say_why() -> None:
    mapping, problems = map_declared_locks(
        registry(),
        [
            DeclaredLocks("T-1", "TRK-FLEET-1", (LOCK2_ID,)),
            DeclaredLocks("T-2", "TRK-FLEET-2", (LOCK2_ID,)),
            DeclaredLocks("T-3", "TRK-OTHER", (LOCK_ID,)),
        ],
    )
    assert mapping == {}
    assert problems == [
        f"declaration T-3 names lock {LOCK_ID} for TRK-OTHER, but the registry lists it for "
        f"{NODE}: the registry wins",
        f"lock {LOCK2_ID} is named by open declarations of different trucks: "
        "T-1 (TRK-FLEET-1), T-2 (TRK-FLEET-2); mapped to none until one of them closes",
    ]
    _, outside = map_declared_locks(registry(), [DeclaredLocks("T-4", "TRK-X", (LOCK2_ID,))])
    assert outside == [
        f"declaration T-4 names lock {LOCK2_ID} for TRK-X, which is not in the registry's "
        "fleet: add it there to map the lock"
    ]
    assert registry().mapped({}).keys() == {LOCK_PHONE}  # unmapped: not a device yet


def test_a_lock_two_trucks_claim_stays_sealed_where_it_travels() -> None:
    # A declaration for the next truck registered while the lock's trip is under way:
    # the started trip keeps it, whatever the gateway's mapping was.
    claims = [
        DeclaredLocks("T-1", "TRK-FLEET-1", (LOCK2_ID,), started=True),
        DeclaredLocks("T-2", "TRK-FLEET-2", (LOCK2_ID,)),
    ]
    mapping, problems = map_declared_locks(registry(), claims)
    assert mapping == {LOCK2_ID: "TRK-FLEET-1"}
    assert problems == [
        f"lock {LOCK2_ID} is named by open declarations of different trucks: "
        "T-1 (TRK-FLEET-1), T-2 (TRK-FLEET-2); it stays with TRK-FLEET-1 until that trip ends"
    ]
    # Neither started: the truck it is mapped to now keeps it; unmapped, neither gets it.
    waiting = [DeclaredLocks(c.trip_id, c.vehicle_id, c.lock_ids) for c in claims]
    kept, _ = map_declared_locks(registry(), waiting, {LOCK2_ID: "TRK-FLEET-2"})
    assert kept == {LOCK2_ID: "TRK-FLEET-2"}
    assert map_declared_locks(registry(), waiting, {LOCK2_ID: "TRK-OTHER"})[0] == {}
    # Both started (a mistake in the data): the current mapping decides, else none.
    both = [DeclaredLocks(c.trip_id, c.vehicle_id, c.lock_ids, True) for c in claims]
    assert map_declared_locks(registry(), both, {LOCK2_ID: "TRK-FLEET-1"})[0] == {
        LOCK2_ID: "TRK-FLEET-1"
    }
    assert map_declared_locks(registry(), both)[0] == {}


def test_a_tracker_needs_its_node_and_a_fleet_needs_a_lock_without_one() -> None:
    with pytest.raises(ValidationError, match="tracker with phone 1 needs its node_id"):
        CellularRegistry.model_validate({"devices": [{"phone": "1", "kind": "tracker"}]})
    with pytest.raises(ValidationError, match="fleet is for locks listed without node_id"):
        CellularRegistry.model_validate(
            {"devices": [{"phone": "1", "node_id": "T1", "lock_id": "L1"}], "fleet": ["T2"]}
        )


async def test_the_gateway_takes_a_lock_once_a_declaration_names_it(
    start_gateway: GatewayFactory, collector: Collector
) -> None:
    running = await start_gateway(registry=REGISTRY)
    gateway = running.gateway

    def node_of(phone: str) -> str | None:
        session = gateway.sessions.get(phone_key(phone))
        device = session.device if session is not None else None
        return device.node_id if device is not None else None

    async def connect() -> tuple[Jt808Terminal, asyncio.Task[None]]:
        terminal = Jt808Terminal("127.0.0.1", running.port, LOCK2_PHONE, "EL00102")
        return terminal, asyncio.create_task(terminal.run())

    # Not declared yet: refused as a terminal of no truck; its report stays in the lock.
    terminal, task = await connect()
    try:
        await wait_until(lambda: gateway.metrics.refused["unknown_terminal"] >= 1, 20)
        assert not terminal.online.is_set()
    finally:
        task.cancel()

    assert gateway.map_declared_locks([DeclaredLocks("T-1", "TRK-FLEET-1", (LOCK2_ID,))]) == []
    terminal, task = await connect()
    try:
        await asyncio.wait_for(terminal.online.wait(), 20)
        terminal.report(lock_report(1, lock_id=LOCK2_ID))
        await wait_until(lambda: terminal.answered == 1, 20)
        await collector.wait_for(lambda: len(collector.on("lock")) == 1)
        # Declared again for another truck: disconnected, and back for its new node.
        gateway.map_declared_locks([DeclaredLocks("T-2", "TRK-FLEET-2", (LOCK2_ID,))])
        await wait_until(lambda: gateway.metrics.closed["remapped"] == 1, 20)
        await wait_until(lambda: node_of(LOCK2_PHONE) == "TRK-FLEET-2", 30)
        terminal.report(lock_report(2, lock_id=LOCK2_ID))
        await collector.wait_for(lambda: len(collector.on("lock")) == 2)
    finally:
        task.cancel()
    locks = [
        (topics.parse(t).node_id, p["counter"])
        for t, p, _ in collector.messages
        if t.endswith("/lock")
    ]
    assert locks == [("TRK-FLEET-1", 1), ("TRK-FLEET-2", 2)]

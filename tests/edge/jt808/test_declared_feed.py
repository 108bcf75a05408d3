"""The gateway maps its locks by the server's `declared` lists (edge.jt808.declared):
what it takes from them, and a whole run — a declaration registered over REST on a
running server maps a lock listed without a node, its reports reach the server as the
declared truck's, and the trip's release takes the mapping away."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
from pathlib import Path

from contract.cellular_registry import DeclaredLocks, phone_key
from devtools.broker import MosquittoBroker
from edge.jt808.declared import DeclaredLists
from firmware_stubs.jt808_terminal import Jt808Terminal
from tests.edge.jt808.conftest import LOCK2_ID, LOCK2_PHONE, GatewayFactory, lock_report, wait_until
from tests.hil.conftest import Bench

TRUCK = "TRK-FLEET-9"
REGISTRY = {"devices": [{"phone": LOCK2_PHONE, "lock_id": LOCK2_ID}], "fleet": [TRUCK, "TRK-X"]}


def listed(trips: list[tuple[str, list[str]]], node: str = TRUCK) -> bytes:
    body = {
        "node_id": node,
        "ts": "2026-12-01T08:00:00.000Z",
        "trips": [{"trip_id": t, "lock_ids": locks} for t, locks in trips],
    }
    return json.dumps(body).encode()


def test_the_lists_change_the_mapping_and_bad_ones_change_nothing() -> None:
    calls: list[list[DeclaredLocks]] = []
    lists = DeclaredLists(calls.append)
    lists.receive(TRUCK, listed([("T-2", ["L-2"]), ("T-1", ["L-1", "L-3"])]))
    assert calls == [
        [DeclaredLocks("T-2", TRUCK, ("L-2",)), DeclaredLocks("T-1", TRUCK, ("L-1", "L-3"))]
    ]
    lists.receive(TRUCK, listed([("T-2", ["L-2"]), ("T-1", ["L-1", "L-3"])]))  # the same
    for bad in (
        b"{not json",
        listed([("T-9", [])]),  # a trip without locks
        listed([("T-9", ["L-9"])], node="TRK-X"),  # another truck's, on this one's topic
        b"x" * 20_000,
    ):
        lists.receive(TRUCK, bad)
    assert len(calls) == 1  # neither the repeat nor the refusals changed anything
    assert lists.refused == {"not_json": 1, "invalid": 1, "node_mismatch": 1, "too_large": 1}
    lists.receive("TRK-X", listed([("T-3", ["L-4"])], node="TRK-X"))
    lists.receive(TRUCK, b"")  # cleared: the truck has no open trip
    assert calls[-1] == [DeclaredLocks("T-3", "TRK-X", ("L-4",))]
    # A new broker connection: TRK-X's list is not sent again (cleared meanwhile).
    lists.begin()
    lists.settle()
    assert calls[-1] == [] and lists.lists == {}


def stored_locks(db: Path, node: str) -> list[dict[str, object]]:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        rows = conn.execute(
            "SELECT payload FROM edge_messages WHERE node_id = ? AND channel = 'lock' ORDER BY seq",
            (node,),
        ).fetchall()
    return [json.loads(r[0]) for r in rows]


def release(db: Path, trip_id: str) -> None:
    """The trip released at its arrival gate (by the gate worker, in its own process)."""
    with contextlib.closing(sqlite3.connect(db)) as conn, conn:
        conn.execute("UPDATE trips SET status = 'released' WHERE trip_id = ?", (trip_id,))


async def test_a_declaration_on_the_server_maps_the_lock_until_its_trip_is_released(
    start_gateway: GatewayFactory, own_broker: MosquittoBroker, tmp_path: Path
) -> None:
    running = await start_gateway(registry=REGISTRY)
    gateway = running.gateway
    (tmp_path / "bench").mkdir()
    bench = Bench(tmp_path / "bench", own_broker)
    try:
        await asyncio.to_thread(bench.start_server)
        declaration = {
            "declaration_id": "DECL-FEED-1",
            "enterprise": {"code": "4401960001", "name": "示范供应链", "credit": "advanced"},
            "vehicle_id": TRUCK,
            "plate": "粤A·F9001",
            "lock_ids": [LOCK2_ID, "EL-SERIAL-1"],
            "containers": ["CSQU3054383"],
            "origin_gate": "G-HUANGPU-1",
            "destination_gate": "G-BAIYUN-1",
            "route_id": "R-HP-BY",
            "time_limit_min": 600,
        }
        answer = await asyncio.to_thread(bench.api, "POST", "/declarations", json=declaration)
        assert answer.status_code == 201, answer.text

        def node_of_lock() -> str | None:
            device = gateway.locks.get(LOCK2_ID)
            return device.node_id if device is not None else None

        await wait_until(lambda: node_of_lock() == TRUCK, 20)
        terminal = Jt808Terminal("127.0.0.1", running.port, LOCK2_PHONE, "EL00102")
        task = asyncio.create_task(terminal.run())
        try:
            await asyncio.wait_for(terminal.online.wait(), 20)
            terminal.report(lock_report(1, lock_id=LOCK2_ID))
            await wait_until(lambda: len(stored_locks(bench.db, TRUCK)) == 1, 30)
            [report] = stored_locks(bench.db, TRUCK)
            assert (report["node_id"], report["lock_id"], report["counter"]) == (
                TRUCK,
                LOCK2_ID,
                1,
            )

            # Released: the server clears the truck's list; the lock is a truck's no more.
            await asyncio.to_thread(release, bench.db, "DECL-FEED-1")
            await wait_until(lambda: node_of_lock() is None, 30)
            await wait_until(lambda: gateway.metrics.closed["remapped"] == 1, 20)
            await wait_until(lambda: gateway.metrics.refused["unknown_terminal"] >= 1, 30)
            assert phone_key(LOCK2_PHONE) not in gateway.sessions
            assert gateway.declared.lists == {}
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    finally:
        await asyncio.to_thread(bench.stop)

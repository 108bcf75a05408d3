"""The same trip through both paths to the server: a serial e-lock wired to a truck agent,
and a cellular e-lock reporting through `bondwatch-jt808` (issue 21).

`bondwatch-demo`'s gate, every part a process, with a short scenario: two trucks start
2.5 km before the destination gate G-BAIYUN-1 on the last stretch of R-HP-BY, with the
same declaration but for their ids, the same release record (or none), the same speed and
the same lock, sealed at departure. TRK-T1 has a GNSS receiver, a serial e-lock and a
truck agent; TRK-YUE-D21 (the demo's cellular truck, config/demo/jt808-registry.yaml)
has only its 4G lock, with its own GNSS. The server must see the same trip in both: the
same alarms, and at the gate the same decision for the same reasons.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from demo.__main__ import Demo
from demo.scenario import DemoGate, DemoTruck, Scenario
from devtools.broker import free_port
from tests.hil.test_demo_gate import GATE, ROUTE, last_stretch, truck

pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]

SERIAL, CELLULAR = "TRK-T1", "TRK-YUE-D21"
#: The cellular truck's lock as the demo's gateway registry knows it.
CELLULAR_LOCK = "EL-YUE-D21"
CELLULAR_TRIP = "ZG5161202611239921"


def cellular_twin(serial: DemoTruck, container: str) -> DemoTruck:
    """`serial`'s trip for the cellular truck: its own ids, lock and container."""
    declaration = {
        **serial.declaration,
        "declaration_id": CELLULAR_TRIP,
        "lock_ids": [CELLULAR_LOCK],
        "containers": [container],
    }
    return DemoTruck.model_validate(
        {
            **serial.model_dump(),
            "node_id": CELLULAR,
            "plate": "粤B·2C9L1",
            "cellular": True,
            "declaration": declaration,
        }
    )


def lock_reports(database: Path, node: str) -> list[dict[str, Any]]:
    """Every lock report of `node` in the server's record."""
    with contextlib.closing(sqlite3.connect(database)) as db:
        rows = db.execute(
            "SELECT payload FROM edge_messages WHERE node_id = ? AND channel = 'lock' ORDER BY seq",
            (node,),
        ).fetchall()
    return [json.loads(r[0]) for r in rows]


def wait_outcomes(demo: Demo, count: int) -> dict[str, str]:
    assert demo.choreographer is not None
    deadline = time.monotonic() + 300
    while len(demo.choreographer.outcomes) < count:
        assert time.monotonic() < deadline, (
            f"outcomes so far {demo.choreographer.outcomes}; lane "
            f"{[(s.state, s.reason) for s in demo.choreographer.history]}"
        )
        time.sleep(0.5)
    return dict(demo.choreographer.outcomes)


@pytest.mark.parametrize(
    ("release", "decision", "outcome"), [("record", "open", "released"), ("none", "hold", "held")]
)
def test_a_cellular_lock_truck_gets_the_serial_trucks_alarms_and_gate_decision(
    tmp_path: Path, release: str, decision: str, outcome: str
) -> None:
    playback = last_stretch(ROUTE, 2500, tmp_path / "last-stretch.geojson")
    serial = truck(SERIAL, 1, "CSQU3054383", release, playback)
    scenario = Scenario(
        time_scale=10,
        trucks=[serial, cellular_twin(serial, "TGHU8643952")],
        gate=DemoGate(node_id=GATE, hold_s=5, drive_off_s=1, travel_s=1, decision_timeout_s=30),
    )
    demo = Demo(tmp_path / "run", free_port(), scenario)
    try:
        base = demo.start()
        assert demo.credentials is not None
        assert wait_outcomes(demo, 2) == {SERIAL: outcome, CELLULAR: outcome}

        headers = {"Authorization": f"Bearer {demo.credentials.integration_token}"}

        def get(path: str, **params: Any) -> Any:
            response = httpx.get(f"{base}/api/v1{path}", params=params, headers=headers, timeout=10)
            assert response.status_code == 200, response.text
            return response.json()

        trips = {SERIAL: serial.declaration["declaration_id"], CELLULAR: CELLULAR_TRIP}
        by_trip = {p["trip_id"]: p for p in get("/passages", gate=GATE)}
        assert set(by_trip) == set(trips.values()), by_trip
        passages = {node: by_trip[trip] for node, trip in trips.items()}
        for node in (SERIAL, CELLULAR):
            assert passages[node]["decision"] == decision, passages[node]
        assert passages[CELLULAR]["reason_codes"] == passages[SERIAL]["reason_codes"]
        if decision == "hold":
            assert "release_missing" in passages[CELLULAR]["reason_codes"]
        else:
            assert passages[CELLULAR]["command_result"]["result"] == "done"
        statuses = {node: get(f"/trips/{trip}")["status"] for node, trip in trips.items()}
        assert statuses == {SERIAL: outcome, CELLULAR: outcome}

        # The locks' reports reached the record the same way: sealed, signed by the lock.
        reports = {node: lock_reports(tmp_path / "run" / "bondwatch.db", node) for node in trips}
        for node, lock_id in (
            (SERIAL, serial.declaration["lock_ids"][0]),
            (CELLULAR, CELLULAR_LOCK),
        ):
            assert reports[node], f"no lock report of {node}"
            assert {(r["lock_id"], r["state"]) for r in reports[node]} == {(lock_id, "sealed")}
            assert all(r.get("mac") and r.get("counter") for r in reports[node])

        alarms = {
            node: sorted(a["type"] for a in get("/alarms", vehicle_id=node, limit=1000))
            for node in (SERIAL, CELLULAR)
        }
        assert alarms[CELLULAR] == alarms[SERIAL], alarms
    finally:
        demo.stop()

"""`bondwatch-demo`'s gate, whole: the `Demo` with a short scenario, every part a process.

Two trucks start 2.5 km before the destination gate G-BAIYUN-1 on the last stretch of
R-HP-BY, each with its GNSS receiver, its e-lock sealed at departure and its truck agent.
The gate (barrier stub, camera stub, `bondwatch-edge gate`) reads each one as it
arrives; the server releases the one with a release record and holds the other. The
test checks what an officer would see through the REST API, and the barrier and the
lane's light through the barrier stub.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from demo.__main__ import Demo
from demo.gate import distance_m
from demo.scenario import DemoGate, DemoTruck, Scenario
from devtools.broker import free_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]

PROJECT = Path(__file__).resolve().parents[2]
ROUTE = PROJECT / "config" / "demo" / "routes" / "R-HP-BY.geojson"
GATE = "G-BAIYUN-1"


def last_stretch(route: Path, metres: float, out: Path) -> Path:
    """The route's last `metres` as a playback GeoJSON line (ends at the gate)."""
    features = json.loads(route.read_text(encoding="utf-8"))["features"]
    line = next(f for f in features if f["geometry"]["type"] == "LineString")
    coords = line["geometry"]["coordinates"]
    kept, run = [coords[-1]], 0.0
    for a, b in zip(reversed(coords[:-1]), reversed(coords[1:]), strict=True):
        kept.insert(0, a)
        run += distance_m(tuple(a), tuple(b))
        if run >= metres:
            break
    out.write_text(
        json.dumps(
            {
                "type": "FeatureCollection",
                "features": [
                    {
                        "type": "Feature",
                        "properties": {"kind": "route", "route_id": "PLAYBACK-LAST"},
                        "geometry": {"type": "LineString", "coordinates": kept},
                    }
                ],
            }
        )
    )
    return out


def truck(node: str, number: int, container: str, release: str, playback: Path) -> DemoTruck:
    return DemoTruck.model_validate(
        {
            "node_id": node,
            "plate": f"粤A·T{number:04d}",
            "route_id": "R-HP-BY",
            "playback": playback,
            "speed_kmh": 60,
            "elock": True,
            "release": release,
            "declaration": {
                "declaration_id": f"ZG51612026112399{number:02d}",
                "enterprise": {"code": "4401960001", "name": "示范", "credit": "advanced"},
                "lock_ids": [f"EL-T{number}"],
                "containers": [container],
                "origin_gate": "G-HUANGPU-1",
                "destination_gate": GATE,
                "time_limit_min": 120,
            },
        }
    )


def barrier_state(demo: Demo) -> dict[str, Any]:
    assert demo.gate is not None
    control = demo.gate.control

    async def ask() -> dict[str, Any]:
        reader, writer = await asyncio.open_connection(*control)
        writer.write(b"state\n")
        await writer.drain()
        answer = (await reader.readline()).decode()
        writer.close()
        assert answer.startswith("OK "), answer
        state: dict[str, Any] = json.loads(answer[3:])
        return state

    return asyncio.run(ask())


def test_the_demo_gate_releases_the_clean_truck_and_holds_the_other(tmp_path: Path) -> None:
    playback = last_stretch(ROUTE, 2500, tmp_path / "last-stretch.geojson")
    scenario = Scenario(
        time_scale=10,
        trucks=[
            truck("TRK-T1", 1, "CSQU3054383", "record", playback),
            truck("TRK-T2", 2, "MSKU6011672", "none", playback),
        ],
        gate=DemoGate(node_id=GATE, hold_s=5, drive_off_s=1, travel_s=1, decision_timeout_s=30),
    )
    demo = Demo(tmp_path / "run", free_port(), scenario)
    try:
        started = time.monotonic()
        base = demo.start()
        print(f"demo started in {time.monotonic() - started:.1f} s")
        assert demo.choreographer is not None and demo.credentials is not None
        deadline = time.monotonic() + 300
        while len(demo.choreographer.outcomes) < 2:
            assert time.monotonic() < deadline, (
                f"outcomes so far {demo.choreographer.outcomes}; lane "
                f"{[(s.state, s.reason) for s in demo.choreographer.history]}"
            )
            time.sleep(0.5)
        assert demo.choreographer.outcomes == {"TRK-T1": "released", "TRK-T2": "held"}

        headers = {"Authorization": f"Bearer {demo.credentials.integration_token}"}
        passages = httpx.get(
            f"{base}/api/v1/passages", params={"gate": GATE}, headers=headers, timeout=10
        ).json()
        by_trip = {p["trip_id"]: p for p in passages}
        released = by_trip["ZG5161202611239901"]
        assert [c["number"] for c in released["containers"]] == ["CSQU3054383"]
        assert released["decision"] == "open", released
        assert released["command_result"]["result"] == "done", released
        held = by_trip["ZG5161202611239902"]
        assert held["decision"] == "hold"
        assert "release_missing" in held["reason_codes"], held
        trips = {
            t: httpx.get(f"{base}/api/v1/trips/{t}", headers=headers, timeout=10).json()["status"]
            for t in by_trip
        }
        assert trips == {"ZG5161202611239901": "released", "ZG5161202611239902": "held"}
        # Each passage's frame and the crop of its number, uploaded by the gate's own token
        # beside the lane (within moments of the decision).
        deadline = time.monotonic() + 30
        while not all(len(p["evidence"]) >= 2 for p in passages):
            assert time.monotonic() < deadline, passages
            time.sleep(0.5)
            passages = httpx.get(
                f"{base}/api/v1/passages", params={"gate": GATE}, headers=headers, timeout=10
            ).json()
        for passage in passages:
            number = passage["containers"][0]["number"]
            kinds = sorted(e["kind"] for e in passage["evidence"])
            assert kinds == ["crop", "frame"], passage["evidence"]
            assert all(number in [t["text"] for t in e["texts"]] for e in passage["evidence"])

        state = barrier_state(demo)
        assert state["commands"].count("open") == 1, state
        assert state["closed_limit"] and state["lamp"] == "red"
        assert [lamp for lamp in state["lamps"] if lamp != "off"] == ["red", "green", "red"]
        lane = [(s.state, s.signal) for s in demo.choreographer.history]
        assert ("open", "green") in lane and lane[-1] == ("idle", "red"), lane
        assert_lock_reports_keep_the_trucks_time(tmp_path / "run" / "bondwatch.db")
    finally:
        demo.stop()


def assert_lock_reports_keep_the_trucks_time(database: Path) -> None:
    """The e-lock reports carry the trucks' simulated time, as their fixes do: in seq
    order each falls between the fixes around it. On the wall clock they would be more
    than a minute behind (and the server would judge every one as late data)."""
    with sqlite3.connect(database) as db:
        rows = db.execute(
            "SELECT node_id, channel, ts FROM edge_messages"
            " WHERE channel IN ('position', 'lock') ORDER BY node_id, seq"
        ).fetchall()
    slack = timedelta(seconds=3)  # whole seconds, and when the lock started
    checked = 0
    for node in {row[0] for row in rows}:
        stream = [(ch, datetime.fromisoformat(ts)) for n, ch, ts in rows if n == node]
        for i, (channel, ts) in enumerate(stream):
            if channel != "lock":
                continue
            before = [t for ch, t in stream[:i] if ch == "position"]
            after = [t for ch, t in stream[i + 1 :] if ch == "position"]
            if before:
                assert ts >= before[-1] - slack, (node, ts, before[-1])
            if after:
                assert ts <= after[0] + slack, (node, ts, after[0])
            checked += 1 if before and after else 0
    assert checked >= 1, rows

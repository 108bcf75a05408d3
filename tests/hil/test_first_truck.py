"""The first vertical slice, every part real (issue: foundation).

GNSS stub on a pty → `bondwatch-edge truck` → Mosquitto → `bondwatch-server` → SQLite →
`GET /api/v1/trips/{id}?track=1`. The stored track must follow the route: every point
within the stub's noise of the route line, in order, and none lost.
"""

from __future__ import annotations

import json
import math
import time
from datetime import UTC, datetime, timedelta

import pytest
from shapely.geometry import LineString, Point

from edge.outbox import Outbox
from tests.hil.conftest import DEMO, Bench

NOISE_M = 4.0


def local_metres(lon: float, lat: float, lat0: float) -> tuple[float, float]:
    """Equirectangular metres around `lat0`: well under 0.1% error over a 10 km stretch."""
    k = 111_320.0
    return lon * k * math.cos(math.radians(lat0)), lat * k


@pytest.mark.hil
def test_truck_positions_reach_the_trip_track(bench: Bench) -> None:
    bench.start_server()
    route_file = DEMO / "routes" / "R-HP-BY.geojson"
    declaration = {
        "declaration_id": "HIL-0001",
        "enterprise": {"code": "4401960001", "name": "示范供应链", "credit": "advanced"},
        "vehicle_id": "TRK-HIL-1",
        "plate": "粤A·D3K21",
        "lock_ids": ["EL-1"],
        "containers": ["CSQU3054383"],
        "origin_gate": "G-HUANGPU-1",
        "destination_gate": "G-BAIYUN-1",
        "route_id": "R-HP-BY",
        "time_limit_min": 120,
    }
    assert bench.api("POST", "/declarations", json=declaration).status_code == 201

    start = (datetime.now(UTC) - timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    stub = bench.spawn(
        "gnss",
        [
            "-m",
            "firmware_stubs.gnss",
            "--route",
            str(route_file),
            "--speed-kmh",
            "60",
            "--noise-m",
            str(NOISE_M),
            "--rate",
            "1",
            "--time-scale",
            "20",
            "--seed",
            "7",
            "--start-time",
            start,
        ],
        ready="READY",
    )
    port = next(line for line in stub.lines if line.startswith("/"))
    state = bench.start_truck("TRK-HIL-1", port, interval_s=0.001, min_interval_s=0)

    def track_len() -> int:
        trip = bench.api("GET", "/trips/HIL-0001", params={"track": 1}).json()
        return len(trip["track"] or [])

    bench.wait_for(lambda: track_len() >= 200, 60)
    stub.stop()  # the receiver goes quiet; the agent reports it and drains its outbox
    reserved: dict[int, str] = {}
    last_seq = 0

    def drained() -> bool:
        nonlocal reserved, last_seq
        outbox = Outbox(state / "outbox.sqlite3", "TRK-HIL-1", max_bytes=1 << 30)
        try:
            stats, reserved = outbox.stats(), outbox.reservations()
        finally:
            outbox.close()
        last_seq = stats.last_seq
        return stats.count == 0 and bench.stored_seqs("TRK-HIL-1")[-1] >= stats.last_seq

    bench.wait_for(drained, 30)
    time.sleep(0.5)

    trip = bench.api("GET", "/trips/HIL-0001", params={"track": 1}).json()
    assert trip["status"] == "in_transit"
    track = trip["track"]
    assert len(track) >= 200

    # In order: fix times strictly increase, and so do the sequence numbers.
    times = [p["ts"] for p in track]
    assert times == sorted(times) and len(set(times)) == len(times)
    seqs = [p["seq"] for p in track]
    assert seqs == sorted(seqs)

    # None lost: every sequence number the agent used reached the store, exactly once;
    # the only numbers missing are ones reserved for a message not sent (the last will).
    stored = bench.stored_seqs("TRK-HIL-1")
    assert len(stored) == len(set(stored))
    missing = set(range(1, last_seq + 1)) - set(stored)
    assert missing <= set(reserved), f"lost sequence numbers: {sorted(missing - set(reserved))}"
    assert len(missing) <= 1  # at most the will of the one connection

    # On the route: within the stub's noise of the route line.
    feature = next(
        f
        for f in json.loads(route_file.read_text())["features"]
        if f["properties"]["kind"] == "route"
    )
    lat0 = feature["geometry"]["coordinates"][0][1]
    line = LineString(
        [local_metres(lon, lat, lat0) for lon, lat in feature["geometry"]["coordinates"]]
    )
    worst = max(line.distance(Point(local_metres(p["lon"], p["lat"], lat0))) for p in track)
    assert worst <= NOISE_M + 1.0, f"a stored point is {worst:.1f} m from the route line"
    # And it moved: 200 fixes at 60 km/h cover more than 2 km of the route.
    first, last = (Point(local_metres(p["lon"], p["lat"], lat0)) for p in (track[0], track[-1]))
    assert line.project(last) - line.project(first) > 2000

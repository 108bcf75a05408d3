"""A cellular e-lock drives a trip through `bondwatch-jt808` to the server (issue 21).

Every part is its own process: Mosquitto, `bondwatch-server`, `bondwatch-jt808`, and the
lock stub in its cellular mode (`firmware_stubs.elock.cellular`: its own GNSS moving along
the demo route, its own TCP connection to the gateway). Mid-trip the gateway is killed
(SIGKILL) and restarted while the broker is down — killed too, losing what it held —
and the lock's rope is cut meanwhile. The legal record must hold every report the lock
made, once, in order, and the trip the same lock alarms a serial lock's reports raise.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from devtools.broker import MosquittoBroker, free_port
from devtools.processes import Child
from tests.hil.conftest import DEMO, Bench
from tests.hil.truck_rig import control

pytestmark = [pytest.mark.hil, pytest.mark.timeout(240)]

NODE, LOCK_ID, PHONE, TRIP = "TRK-CELL-HIL", "EL-CELL-HIL", "13800000301", "HIL-CELL-0001"
ROUTE = DEMO / "routes" / "R-HP-BY.geojson"


class CellularRig:
    """The gateway and the cellular lock beside a bench's broker and server."""

    def __init__(self, bench: Bench) -> None:
        self.bench = bench
        root = bench.root
        self.store = root / "jt808" / "store.sqlite3"
        (root / "jt808").mkdir(exist_ok=True)
        registry = root / "jt808-registry.yaml"
        registry.write_text(
            yaml.safe_dump(
                {"devices": [{"phone": PHONE, "node_id": NODE, "kind": "lock", "lock_id": LOCK_ID}]}
            )
        )
        (root / "jt808-auth.secret").write_text("hil-jt808-auth-secret-0001\n")
        self.port = free_port()
        self.config = root / "jt808.yaml"
        self.config.write_text(
            yaml.safe_dump(
                {
                    "gateway_id": "jt808-gw-hil",
                    "broker": {
                        **bench.broker_settings(),
                        "reconnect_min_s": 0.2,
                        "reconnect_max_s": 1.0,
                    },
                    "store": {
                        "path": str(self.store),
                        "nonce_path": str(root / "jt808" / "nonces.sqlite3"),
                        "ack_timeout_s": 2.0,
                    },
                    "server_public_key": str(bench.public_key),
                    "registry": str(registry),
                    "auth_secret_file": str(root / "jt808-auth.secret"),
                    "listen": {"host": "127.0.0.1", "port": self.port},
                }
            )
        )
        self.gateway: Child | None = None
        self.lock_child: Child | None = None
        self.lock_control = free_port()

    def start_gateway(self) -> None:
        self.gateway = self.bench.spawn(
            "jt808", ["-m", "edge.jt808", "--config", str(self.config)], ready="READY"
        )

    def start_lock(self) -> None:
        # Real time, a report a second: the gateway's own messages (availability, health)
        # carry its clock, which a time-scaled lock would leave hours behind.
        self.lock_child = self.bench.spawn(
            "cellular-lock",
            [
                "-m",
                "firmware_stubs.elock.cellular",
                "--gateway",
                f"127.0.0.1:{self.port}",
                "--route",
                str(ROUTE),
                "--speed-kmh",
                "60",
                "--resend-after",
                "2",
                "--",
                "--lock-id",
                LOCK_ID,
                "--phone",
                PHONE,
                "--secret",
                "hil-cellular-lock-secret",
                "--control-port",
                str(self.lock_control),
                "--interval",
                "1",
                "--sealed-for",
                TRIP,
            ],
            ready="READY",
        )

    def lock(self, line: str = "status") -> dict[str, Any]:
        answer = control(self.lock_control, line)
        assert answer.startswith("OK "), answer
        state: dict[str, Any] = json.loads(answer[3:])
        return state

    def stored(self, channel: str) -> list[dict[str, Any]]:
        with contextlib.closing(sqlite3.connect(self.bench.db)) as conn:
            rows = conn.execute(
                "SELECT payload FROM edge_messages WHERE node_id = ? AND channel = ? ORDER BY seq",
                (NODE, channel),
            ).fetchall()
        return [json.loads(r[0]) for r in rows]

    def store_count(self) -> int:
        with contextlib.closing(sqlite3.connect(self.store)) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])

    def alarm_types(self) -> list[str]:
        alarms = self.bench.api("GET", "/alarms").json()
        items = alarms["items"] if isinstance(alarms, dict) else alarms
        return sorted(a["type"] for a in items if a.get("vehicle_id") == NODE)


@pytest.fixture
def rig(tmp_path: Path, own_broker: MosquittoBroker) -> Iterator[CellularRig]:
    bench = Bench(tmp_path, own_broker)
    try:
        bench.start_server()
        declaration = {
            "declaration_id": TRIP,
            "enterprise": {"code": "4401960001", "name": "示范供应链", "credit": "advanced"},
            "vehicle_id": NODE,
            "plate": "粤A·C3L21",
            "lock_ids": [LOCK_ID],
            "containers": ["CSQU3054383"],
            "origin_gate": "G-HUANGPU-1",
            "destination_gate": "G-BAIYUN-1",
            "route_id": "R-HP-BY",
            "time_limit_min": 600,
        }
        assert bench.api("POST", "/declarations", json=declaration).status_code == 201
        yield CellularRig(bench)
    finally:
        bench.stop()


def test_a_cellular_lock_drives_a_trip_and_a_gateway_and_broker_crash_lose_nothing(
    rig: CellularRig,
) -> None:
    bench = rig.bench
    rig.start_gateway()
    rig.start_lock()
    bench.wait_for(lambda: len(rig.stored("lock")) >= 12, 60)

    # The gateway dies (a power cut) while the lock keeps reporting; the broker crashes.
    assert rig.gateway is not None
    rig.gateway.kill()
    bench.wait_for(lambda: rig.lock()["unanswered"] >= 3, 20)
    bench.broker.kill()
    rig.start_gateway()  # answers from its store while the broker is away
    bench.wait_for(lambda: rig.lock()["unanswered"] == 0 and rig.lock()["registered"], 30)
    rig.lock("rope_cut")  # the seal broken while nothing reaches the server
    bench.wait_for(lambda: rig.lock()["unanswered"] == 0, 20)
    made_before = rig.lock()["report_counter"]
    bench.broker.start()  # the same port; the gateway reconnects and drains its store

    bench.wait_for(lambda: len(rig.stored("lock")) >= made_before + 5, 60)
    # The same lock alarms a serial lock's reports raise (tests/server/rules): a rope cut
    # on the road is a tamper and an opening; the gateway's crash raised nothing.
    bench.wait_for(lambda: {"LOCK_TAMPER", "LOCK_OPENED"} <= set(rig.alarm_types()), 20)
    assert set(rig.alarm_types()) == {"LOCK_TAMPER", "LOCK_OPENED"}
    made, left = rig.lock()["report_counter"], rig.lock()["unanswered"]
    assert rig.lock_child is not None
    rig.lock_child.stop()  # the trip's reports end here
    assert left <= 1  # at most the report of the last moment waits for its answer

    def all_in() -> bool:
        stored = [p["counter"] for p in rig.stored("lock")]
        return rig.store_count() == 0 and len(set(stored)) >= made - left

    bench.wait_for(all_in, 90, interval=0.5)
    locks = rig.stored("lock")
    counters = [p["counter"] for p in locks]
    # Nothing lost, nothing twice: every report the lock made is in the record once.
    assert sorted(counters) == list(range(1, len(counters) + 1))
    assert made - left <= len(counters) <= made and len(counters) == len(set(counters))
    assert any(p["event"] == "rope_cut" and p["state"] == "open" for p in locks)
    # Positions: one per report, in order of their own time, along the route.
    trip = bench.api("GET", f"/trips/{TRIP}", params={"track": 1}).json()
    assert trip["status"] == "in_transit"
    times = [p["ts"] for p in trip["track"]]
    assert len(times) == len(rig.stored("position")) == len(counters)
    assert times == sorted(times)

"""A gate passage and its command result across broker crashes (issue 23, test (d)).

Every part real: Mosquitto with the shipped settings (autosave every 10 s), the server as
a subprocess (its gate worker decides passages and signs commands), the gate agent
`bondwatch-edge gate` with the barrier stub (Modbus RTU on a pty) and the camera stub,
real OCR. The gate is G-BAIYUN-1 of the demo routes, so the server knows it; the
containers are not declared, so the server decides `hold`.

1. A passage published while the server is away, the broker SIGKILLed a moment after
   its PUBACK: the agent sends it again (flagged `replayed`); the restarted server stores
   it once and decides it (the command is recorded, not sent: the lane held locally).
2. A passage taken by the server from the broker's queue and decided; the gate's result
   for that command published while the server is away, the broker SIGKILLed a moment
   after its PUBACK: the agent sends the result again; the server stores it once.
   To put the result, and only it, in the crash's way, the agent is frozen (SIGSTOP)
   while the server decides and thawed once the server is down.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from contract import topics
from contract.topics import Channel
from devtools.broker import MosquittoBroker
from devtools.processes import Child
from edge.outbox import Outbox
from tests.hil.conftest import Bench
from tests.hil.test_broker_crash import wait_autosave
from tests.hil.test_gate import (
    GateBench,
    _start_camera,
    _wait_log,
    control,
    leave,
    show,
)

pytestmark = [pytest.mark.hil, pytest.mark.slow, pytest.mark.timeout(420)]

NODE = "G-BAIYUN-1"
LANE = "L1"
#: Short, so that the resend is seen within the test.
ACK_TIMEOUT_S = 2.0
#: Long: the lane still waits for the decision when the frozen agent is thawed.
DECISION_TIMEOUT_S = 120.0


@dataclass
class GateRig:
    bench: Bench
    gate: GateBench
    outbox_path: Path

    def server(self) -> Child:
        return next(c for c in self.bench.children if c.name == "server")

    def restart_server(self) -> None:
        self.server().start(ready="bondwatch-server")
        base = self.bench.base
        self.bench.wait_for(lambda: httpx.get(f"{base}/healthz").json()["broker_connected"], 30)

    def held(self, channel: Channel) -> list[tuple[int, dict[str, Any], float | None]]:
        """(seq, payload, PUBACK time) of the gate's unacknowledged messages on `channel`."""
        with contextlib.closing(Outbox(self.outbox_path, NODE, 1 << 30)) as box:
            items = box.pending(1_000_000)
        topic = topics.build("gate", NODE, channel)
        return [(m.seq, json.loads(m.payload), m.sent) for m in items if m.topic == topic]

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        with contextlib.closing(sqlite3.connect(self.bench.db)) as conn:
            return conn.execute(sql, params).fetchall()

    def stored(self, channel: str) -> list[dict[str, Any]]:
        rows = self.query(
            "SELECT payload FROM edge_messages WHERE node_id = ? AND channel = ? ORDER BY seq",
            NODE,
            channel,
        )
        return [json.loads(r[0]) for r in rows]

    def drained(self) -> bool:
        """The outbox is empty and every seq it handed out is stored (but reservations)."""
        with contextlib.closing(Outbox(self.outbox_path, NODE, 1 << 30)) as box:
            count, last, reserved = box.stats().count, box.last_seq(), box.reservations()
        stored = {r[0] for r in self.query("SELECT seq FROM edge_messages WHERE node_id = ?", NODE)}
        return count == 0 and not set(range(1, last + 1)) - stored - set(reserved)


@pytest.fixture
def rig(tmp_path: Path, own_broker: MosquittoBroker) -> Iterator[GateRig]:
    """The server, then the gate agent of G-BAIYUN-1 with its barrier and camera stubs."""
    bench = Bench(tmp_path, own_broker)
    started = time.time()
    camera: subprocess.Popen[bytes] | None = None
    try:
        bench.start_server()
        wait_autosave(own_broker, started)  # the server's sessions are on the broker's disk
        barrier = bench.spawn(
            "barrier", ["-m", "firmware_stubs.barrier", "--travel-s", "0.6"], ready="CONTROL"
        )
        pty = barrier.lines[0]
        host, port = barrier.lines[-1].split()[1].split(":")
        camera, url = _start_camera(bench.logs)
        state = tmp_path / "gate-state"
        config = tmp_path / "gate.yaml"
        config.write_text(
            yaml.safe_dump(
                {
                    "node_id": NODE,
                    "broker": {
                        **bench.broker_settings(),
                        "keepalive_s": 60,  # frozen for a while in the second part
                        "reconnect_min_s": 0.2,
                        "reconnect_max_s": 1.0,
                    },
                    "outbox": {
                        "path": str(state / "outbox.sqlite3"),
                        "nonce_path": str(state / "nonces.sqlite3"),
                        "ack_timeout_s": ACK_TIMEOUT_S,
                    },
                    "server_public_key": str(bench.public_key),
                    "lane": LANE,
                    "direction": "in",
                    "decision_timeout_s": DECISION_TIMEOUT_S,
                    "barrier": {
                        "type": "modbus_rtu",
                        "port": pty,
                        "unit_id": 1,
                        "presence_debounce_s": 0.2,
                    },
                    "cameras": [{"type": "opencv", "name": "rear", "url": url, "frames_after": 3}],
                    "images_dir": str(tmp_path / "images"),
                }
            )
        )
        agent = bench.spawn("gate-agent", ["-m", "edge", "gate", "--config", str(config)])
        gate = GateBench(
            tmp_path,
            own_broker,
            None,
            (host, int(port)),
            url.rsplit("/", 1)[0],
            tmp_path / "images",
            agent,
            camera,
        )
        _wait_log(gate, "OCR ready", 120)
        yield GateRig(bench, gate, state / "outbox.sqlite3")
    finally:
        bench.stop()
        if camera is not None:
            camera.kill()
            camera.wait()


def arrive(rig: GateRig, number: str) -> None:
    asyncio.run(show(rig.gate, number))
    state = asyncio.run(control(rig.gate, "arrive"))
    assert state["closed_limit"], state


def just_autosaved(rig: GateRig) -> None:
    """Return right after the broker's periodic save: the next is 10 s away."""
    wait_autosave(rig.bench.broker, time.time())


def crash_after_puback(rig: GateRig, channel: Channel, what: Any) -> int:
    """Wait until the broker took (PUBACK) the message on `channel` that `what` picks,
    SIGKILL the broker at once and start it again; the message's seq."""
    found: list[tuple[int, float]] = []

    def taken() -> bool:
        found[:] = [(s, sent) for s, body, sent in rig.held(channel) if sent and what(body)]
        return bool(found)

    rig.bench.wait_for(taken, 60, interval=0.1)
    rig.bench.broker.kill()
    saved = rig.bench.broker.workdir / "data" / "mosquitto.db"
    # The crash really lost it: the broker's last save came before its PUBACK.
    assert saved.stat().st_mtime < found[0][1]
    rig.bench.broker.start()
    return found[0][0]


def test_a_passage_and_a_command_result_survive_broker_crashes(rig: GateRig) -> None:
    bench = rig.bench
    bench.wait_for(lambda: rig.stored("lane"), 30)  # the gate is on, the server hears it

    # ---- 1. the passage: the server away, the broker crashes ----------------------------
    rig.server().stop()
    just_autosaved(rig)
    arrive(rig, "CSQU3054383")
    seq = crash_after_puback(rig, "passage", lambda body: True)
    time.sleep(2 * ACK_TIMEOUT_S + 2)  # the agent reconnects and sends it again
    rig.restart_server()
    bench.wait_for(lambda: rig.query("SELECT 1 FROM passages WHERE seq = ?", seq), 30)
    (first,) = [p for p in rig.stored("passage") if p["seq"] == seq]
    assert first.get("replayed") is True  # sent again after the crash
    decided = rig.query(
        "SELECT passage_id, decision, replayed, command_id FROM passages WHERE gate_node = ?", NODE
    )
    assert len(decided) == 1
    passage_id, decision, replayed, command_id = decided[0]
    assert passage_id == first["passage_id"] and decision == "hold" and replayed
    # Decided late: the command is recorded, not sent (the lane held when the broker went).
    assert rig.query("SELECT result FROM commands WHERE command_id = ?", command_id) == [(None,)]
    asyncio.run(leave(rig.gate))
    bench.wait_for(rig.drained, 60, interval=0.5)

    # ---- 2. the command result: the server away, the broker crashes --------------------
    rig.server().stop()
    arrive(rig, "TGHU8643952")
    bench.wait_for(lambda: any(sent for _, _, sent in rig.held("passage")), 60)
    rig.gate.agent.signal(signal.SIGSTOP)  # the command will wait for it
    try:
        rig.restart_server()  # takes the passage from the broker's queue, decides, commands
        bench.wait_for(lambda: len(rig.query("SELECT 1 FROM passages")) == 2, 30)
        (second,) = rig.query(
            "SELECT passage_id, decision, replayed, command_id FROM passages WHERE passage_id != ?",
            passage_id,
        )
        assert second[1] == "hold" and not second[2]  # live: decided and sent
        rig.server().stop()
        just_autosaved(rig)
    finally:
        rig.gate.agent.signal(signal.SIGCONT)  # it answers the command: `done`
    command = second[3]
    crash_after_puback(rig, "command/result", lambda body: body["command_id"] == command)
    time.sleep(2 * ACK_TIMEOUT_S + 2)
    rig.restart_server()
    bench.wait_for(rig.drained, 60, interval=0.5)

    results = [r for r in rig.stored("command/result") if r["command_id"] == command]
    (done,) = [r for r in results if r["result"] == "done"]  # executed once, stored once
    # The broker may deliver the command again after its crash (its last save had it in
    # flight): the agent then refuses the replayed nonce, and the server keeps `done`.
    assert all("replay" in r["detail"] for r in results if r is not done), results
    assert rig.query("SELECT result FROM commands WHERE command_id = ?", command) == [("done",)]
    passages = [p["passage_id"] for p in rig.stored("passage")]
    assert sorted(passages) == sorted([passage_id, second[0]])  # each stored once
    lane = [m for m in rig.stored("lane") if m.get("passage_id") == second[0]]
    assert any(m["state"] == "hold" and m["reason"].startswith("server decided hold") for m in lane)

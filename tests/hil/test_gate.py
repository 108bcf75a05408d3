"""The gate agent with everything real: Mosquitto, the barrier and camera stubs, real OCR.

A test-side "server" subscribes to the gate's passages and answers with signed
`GateCommand`s; the barrier's true position is read from the stub's control channel.
One agent serves the module's tests in turn (the OCR models load once).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
import yaml

from contract import topics
from contract.ids import utc_now
from contract.payloads import GateCommand
from contract.signing import (
    generate_private_key,
    new_command_id,
    new_nonce,
    public_key_to_pem,
    sign,
)
from server.demo.broker import MosquittoBroker
from server.demo.processes import Child

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

NODE = "G-TEST-1"
LANE = "L1"
NUMBER = "CSQU3054383"  # rendered by the camera stub's first scene (seed 1), read reliably
DECISION_TIMEOUT_S = 3.0


@dataclass
class GateBench:
    root: Path
    broker: MosquittoBroker
    key: Any
    control: tuple[str, int]
    images: Path
    agent: Child
    camera: subprocess.Popen[bytes]


def _start_camera(logs: Path) -> tuple[subprocess.Popen[bytes], str]:
    # Not `Child`: the stub ends when its stdin closes, so it gets a pipe of its own.
    log = (logs / "camera.log").open("ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "firmware_stubs.camera", "--number", NUMBER, "--fps", "5"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=log,
        start_new_session=True,
    )
    assert proc.stdout is not None
    url = proc.stdout.readline().decode().strip()
    ready = proc.stdout.readline().decode().strip()
    assert url.startswith("http://") and ready == "READY", (url, ready)
    return proc, url


@pytest.fixture(scope="module")
def gate(broker: MosquittoBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GateBench]:
    root = tmp_path_factory.mktemp("gate")
    logs = root / "logs"
    logs.mkdir()
    key = generate_private_key()
    (root / "server.pub").write_bytes(public_key_to_pem(key.public_key()))
    barrier = Child.python(
        "barrier", ["-m", "firmware_stubs.barrier", "--travel-s", "0.6"], logs
    ).start(ready="CONTROL")
    pty = barrier.lines[0]
    host, port = barrier.lines[-1].split()[1].split(":")
    camera, url = _start_camera(logs)
    config = root / "gate.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "node_id": NODE,
                "broker": {"host": broker.host, "port": broker.port},
                "outbox": {"path": "state/outbox.sqlite3", "nonce_path": "state/nonces.sqlite3"},
                "server_public_key": "server.pub",
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
                "images_dir": "images",
            }
        )
    )
    (root / "state").mkdir()
    agent = Child.python(
        "gate-agent", ["-m", "edge", "gate", "--config", str(config)], logs
    ).start()
    bench = GateBench(root, broker, key, (host, int(port)), root / "images", agent, camera)
    try:
        _wait_log(bench, "OCR ready", 60)
        yield bench
    finally:
        agent.stop()
        barrier.stop()
        with contextlib.suppress(OSError):
            assert camera.stdin is not None
            camera.stdin.write(b"quit\n")
            camera.stdin.close()
        try:
            camera.wait(timeout=5)
        except subprocess.TimeoutExpired:
            camera.kill()
            camera.wait()


def _wait_log(bench: GateBench, text: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in bench.agent.log_path.read_text(errors="replace"):
            return
        assert bench.agent.running, bench.agent.log_path.read_text()[-3000:]
        time.sleep(0.2)
    raise AssertionError(f"agent log never said {text!r}:\n" + bench.agent.log_path.read_text())


async def control(bench: GateBench, line: str) -> dict[str, Any]:
    reader, writer = await asyncio.open_connection(*bench.control)
    try:
        writer.write(line.encode() + b"\n")
        await writer.drain()
        answer = (await asyncio.wait_for(reader.readline(), 5)).decode().strip()
    finally:
        writer.close()
    assert answer.startswith("OK "), answer
    state: dict[str, Any] = json.loads(answer[3:])
    return state


async def barrier_reaches(bench: GateBench, limit: str, within_s: float) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while True:
        state = await control(bench, "state")
        if state[limit]:
            return state
        assert loop.time() < deadline, f"barrier never reached {limit}: {state}"
        await asyncio.sleep(0.1)


class Server:
    """The test's stand-in for the server: sees passages and results, sends commands."""

    def __init__(self, client: aiomqtt.Client) -> None:
        self.client = client
        self.passages: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.results: dict[str, dict[str, Any]] = {}
        self.health: list[dict[str, Any]] = []
        self._result_seen = asyncio.Event()

    async def pump(self) -> None:
        async for msg in self.client.messages:
            assert isinstance(msg.payload, bytes)
            data = json.loads(msg.payload)
            if msg.topic.matches(topics.passage(NODE)):
                await self.passages.put(data)
            elif msg.topic.matches(topics.command_result("gate", NODE)):
                self.results[data["command_id"]] = data
                self._result_seen.set()
            elif msg.topic.matches(topics.health("gate", NODE)):
                self.health.append(data)

    async def result(self, command_id: str, within_s: float = 20.0) -> dict[str, Any]:
        async with asyncio.timeout(within_s):
            while command_id not in self.results:
                self._result_seen.clear()
                await self._result_seen.wait()
        return self.results[command_id]

    async def send(self, command: GateCommand) -> str:
        await self.client.publish(topics.command("gate", NODE), command.to_json(), qos=1)
        return command.command_id


def command(
    key: Any, passage_id: str, action: str = "open", lane: str = LANE, age_s: float = 0.0
) -> GateCommand:
    issued = utc_now() - timedelta(seconds=age_s)
    return sign(
        GateCommand.model_validate(
            {
                "node_id": NODE,
                "command_id": new_command_id(),
                "issued_at": issued,
                "expires_at": issued + timedelta(seconds=30),
                "nonce": new_nonce(),
                "passage_id": passage_id,
                "lane": lane,
                "action": action,
                "reasons": ["test"],
            }
        ),
        key,
    )


@pytest.fixture
async def server(gate: GateBench) -> AsyncIterator[Server]:
    async with aiomqtt.Client(
        gate.broker.host, gate.broker.port, identifier=f"test-server-{new_nonce()[:8]}"
    ) as client:
        for topic in (
            topics.passage(NODE),
            topics.command_result("gate", NODE),
            topics.health("gate", NODE),
        ):
            await client.subscribe(topic, qos=1)
        srv = Server(client)
        task = asyncio.create_task(srv.pump())
        try:
            yield srv
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def arrive(gate: GateBench, server: Server) -> dict[str, Any]:
    """A truck drives onto the loop; returns the passage the gate publishes."""
    state = await control(gate, "arrive")
    assert state["closed_limit"], state
    async with asyncio.timeout(60):
        return await server.passages.get()


def _lane_free_seen(gate: GateBench) -> int:
    return gate.agent.log_path.read_text(errors="replace").count(": lane free")


async def leave(gate: GateBench) -> None:
    """The truck drives off; returns once the agent saw it go and the barrier is down."""
    seen = _lane_free_seen(gate)
    await control(gate, "leave")
    for _ in range(100):
        if _lane_free_seen(gate) > seen:
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError("the agent never saw the truck leave the loop")
    await barrier_reaches(gate, "closed_limit", 15)


async def test_truck_read_released_by_a_signed_open_and_closed_behind(gate, server):
    passage = await arrive(gate, server)
    assert passage["lane"] == LANE and passage["direction"] == "in"
    assert passage["node_id"] == NODE
    numbers = [c["number"] for c in passage["containers"]]
    assert numbers[0] == NUMBER, passage
    assert passage["containers"][0]["check_digit_ok"] is True
    assert passage["images"], passage
    for ref in passage["images"]:
        assert ref.startswith(f"gate://{NODE}/")
        saved = gate.images / ref.removeprefix(f"gate://{NODE}/")
        assert saved.read_bytes()[:2] == b"\xff\xd8"  # a JPEG
    assert (await control(gate, "state"))["closed_limit"]

    cid = await server.send(command(gate.key, passage["passage_id"]))
    result = await server.result(cid)
    assert result["result"] == "done", result
    state = await barrier_reaches(gate, "open_limit", 10)
    assert state["loops"][0] is True

    await leave(gate)
    state = await control(gate, "state")
    assert state["closed_limit"] and not state["open_limit"]


async def test_forged_expired_and_wrong_passage_commands_are_refused(gate, server):
    passage = await arrive(gate, server)
    pid = passage["passage_id"]
    forged = await server.send(command(generate_private_key(), pid))
    expired = await server.send(command(gate.key, pid, age_s=300))
    other = await server.send(command(gate.key, "P-someone-else"))
    lane2 = await server.send(command(gate.key, pid, lane="L2"))
    assert (await server.result(forged))["result"] == "bad_signature"
    assert (await server.result(expired))["result"] == "expired"
    wrong = await server.result(other)
    assert wrong["result"] == "refused"
    assert "is not the current passage" in wrong["detail"]
    wrong_lane = await server.result(lane2)
    assert wrong_lane["result"] == "refused" and "lane L2" in wrong_lane["detail"]
    await asyncio.sleep(1.0)
    state = await control(gate, "state")
    assert state["closed_limit"] and not state["open_limit"], state
    assert state["position"] == 0.0, state

    hold = await server.send(command(gate.key, pid, action="hold"))
    assert (await server.result(hold))["result"] == "done"
    await leave(gate)


async def test_no_decision_keeps_the_barrier_down(gate, server):
    passage = await arrive(gate, server)
    await asyncio.sleep(DECISION_TIMEOUT_S + 1.5)
    state = await control(gate, "state")
    assert state["closed_limit"] and not state["open_limit"], state
    assert state["position"] == 0.0
    log = gate.agent.log_path.read_text(errors="replace")
    assert f"no decision within {DECISION_TIMEOUT_S:g} s for {passage['passage_id']}" in log
    # After the timeout, a late `open` for an older passage still changes nothing.
    late = await server.send(command(gate.key, "P-long-gone"))
    assert (await server.result(late))["result"] == "refused"
    await leave(gate)

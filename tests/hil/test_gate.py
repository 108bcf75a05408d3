"""The gate agent with everything real: Mosquitto, the barrier and camera stubs, real OCR.

A test-side "server" subscribes to the gate's passages and lane state and answers with
signed `GateCommand`s; the barrier's true position and the lane's traffic light are read
from the stub's control channel. One agent serves the module's tests in turn (the OCR
models load once), on a broker of the module's own so that one test may stop it.

Each truck shows its own container number: the camera stub is switched to the next
scene (`/trigger?number=…`) before the truck drives onto the loop, and the frames are
960x540 (the reader reads them as well as 1080p, in about half the time).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
import yaml

from contract import topics
from contract.ids import utc_now
from contract.payloads import GateCommand, LaneStatus, decode_edge
from contract.signing import (
    generate_private_key,
    new_command_id,
    new_nonce,
    public_key_to_pem,
    sign,
)
from devtools.broker import MosquittoBroker
from devtools.processes import Child

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

NODE = "G-TEST-1"
LANE = "L1"
FRAME_SIZE = "960x540"
DECISION_TIMEOUT_S = 3.0
#: The camera buffers 4 frames at 5 fps: after this, none shows the previous truck.
SCENE_SETTLE_S = 1.5


@dataclass
class GateBench:
    root: Path
    broker: MosquittoBroker
    key: Any
    control: tuple[str, int]
    camera_base: str
    images: Path
    agent: Child
    camera: subprocess.Popen[bytes]


def _start_camera(logs: Path) -> tuple[subprocess.Popen[bytes], str]:
    # Not `Child`: the stub ends when its stdin closes, so it gets a pipe of its own.
    log = (logs / "camera.log").open("ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "firmware_stubs.camera", "--size", FRAME_SIZE, "--fps", "5"],
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
def gate(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GateBench]:
    with gate_bench(tmp_path_factory.mktemp("gate")) as bench:
        yield bench


@contextlib.contextmanager
def gate_bench(root: Path, decision_timeout_s: float = DECISION_TIMEOUT_S) -> Iterator[GateBench]:
    """Broker, barrier and camera stubs and the agent (lane `LANE` of `NODE`) in `root`,
    the agent's OCR loaded; everything stopped at the end."""
    logs = root / "logs"
    logs.mkdir()
    broker = MosquittoBroker(root / "mosquitto")
    broker.start()
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
                "decision_timeout_s": decision_timeout_s,
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
    bench = GateBench(
        root,
        broker,
        key,
        (host, int(port)),
        url.rsplit("/", 1)[0],
        root / "images",
        agent,
        camera,
    )
    try:
        _wait_log(bench, "OCR ready", 90)
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
        broker.stop()


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
    return await stub_until(bench, lambda s: bool(s[limit]), within_s, f"barrier at {limit}")


async def stub_until(
    bench: GateBench, what: Callable[[dict[str, Any]], bool], within_s: float, said: str
) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while True:
        state = await control(bench, "state")
        if what(state):
            return state
        assert loop.time() < deadline, f"never {said}: {state}"
        await asyncio.sleep(0.05)


def lit(state: dict[str, Any], since: int = 0) -> list[str]:
    """The colours the lane's light showed after the first `since` changes (dark left out)."""
    return [lamp for lamp in state["lamps"][since:] if lamp != "off"]


class Server:
    """The test's stand-in for the server: sees passages, lane and results, sends commands."""

    def __init__(self, client: aiomqtt.Client) -> None:
        self.client = client
        self.passages: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.results: dict[str, dict[str, Any]] = {}
        #: Every result in arrival order (a replayed command's shares its command id).
        self.answers: list[dict[str, Any]] = []
        self.health: list[dict[str, Any]] = []
        self.lane: list[LaneStatus] = []
        self._seen = asyncio.Event()

    async def pump(self) -> None:
        async for msg in self.client.messages:
            assert isinstance(msg.payload, bytes)
            data = json.loads(msg.payload)
            if msg.topic.matches(topics.passage(NODE)):
                await self.passages.put(data)
            elif msg.topic.matches(topics.command_result("gate", NODE)):
                self.results[data["command_id"]] = data
                self.answers.append(data)
            elif msg.topic.matches(topics.health("gate", NODE)):
                self.health.append(data)
            elif msg.topic.matches(topics.lane(NODE)):
                lane = decode_edge("lane", msg.payload)  # the contract's model accepts it
                assert isinstance(lane, LaneStatus)
                self.lane.append(lane)
            self._seen.set()

    async def until(self, what: Callable[[], bool], within_s: float = 20.0) -> None:
        async with asyncio.timeout(within_s):
            while not what():
                self._seen.clear()
                await self._seen.wait()

    async def result(self, command_id: str, within_s: float = 20.0) -> dict[str, Any]:
        await self.until(lambda: command_id in self.results, within_s)
        return self.results[command_id]

    async def lane_state(
        self, state: str, within_s: float = 20.0, passage_id: str | None = None, since: int = 0
    ) -> LaneStatus:
        """The newest lane message in `state` (for `passage_id`), among those from the
        `since`-th on (a count of `self.lane` taken earlier)."""

        def found() -> LaneStatus | None:
            for lane in reversed(self.lane[since:]):
                if lane.state == state and (passage_id is None or lane.passage_id == passage_id):
                    return lane
            return None

        await self.until(lambda: found() is not None, within_s)
        hit = found()
        assert hit is not None
        return hit

    async def send(self, command: GateCommand) -> str:
        await self.client.publish(topics.command("gate", NODE), command.to_json(), qos=1)
        return command.command_id


def command(
    key: Any,
    passage_id: str,
    action: str = "open",
    lane: str = LANE,
    age_s: float = 0.0,
    reasons: tuple[str, ...] = ("test",),
    node: str = NODE,
) -> GateCommand:
    """An `open` or `hold` signed with `key`, issued `age_s` ago (negative: ahead)."""
    issued = utc_now() - timedelta(seconds=age_s)
    return sign(
        GateCommand.model_validate(
            {
                "node_id": node,
                "command_id": new_command_id(),
                "issued_at": issued,
                "expires_at": issued + timedelta(seconds=30),
                "nonce": new_nonce(),
                "passage_id": passage_id,
                "lane": lane,
                "action": action,
                "reasons": list(reasons),
            }
        ),
        key,
    )


@contextlib.asynccontextmanager
async def watching(gate: GateBench) -> AsyncIterator[Server]:
    async with aiomqtt.Client(
        gate.broker.host, gate.broker.port, identifier=f"test-server-{new_nonce()[:8]}"
    ) as client:
        for topic in (
            topics.passage(NODE),
            topics.command_result("gate", NODE),
            topics.health("gate", NODE),
            topics.lane(NODE),
        ):
            await client.subscribe(topic, qos=1)
        srv = Server(client)
        task = asyncio.create_task(srv.pump())
        try:
            yield srv
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await task


@pytest.fixture
async def server(gate: GateBench) -> AsyncIterator[Server]:
    async with watching(gate) as srv:
        yield srv


async def show(gate: GateBench, number: str) -> None:
    """The camera sees the next truck's door; the buffered frames of the last one age out."""
    url = f"{gate.camera_base}/trigger?number={number}"
    shown = await asyncio.to_thread(lambda: urllib.request.urlopen(url, timeout=30).read())
    assert number in shown.decode()
    await asyncio.sleep(SCENE_SETTLE_S)


async def arrive(gate: GateBench, server: Server, number: str) -> dict[str, Any]:
    """A truck with container `number` drives onto the loop; returns its passage."""
    await show(gate, number)
    state = await control(gate, "arrive")
    assert state["closed_limit"], state
    async with asyncio.timeout(60):
        passage = await server.passages.get()
    read = [c["number"] for c in passage["containers"]]
    assert read and read[0] == number, passage
    assert passage["containers"][0]["check_digit_ok"] is True
    return passage


def _lane_free_seen(gate: GateBench) -> int:
    return gate.agent.log_path.read_text(errors="replace").count(": lane free")


async def leave(gate: GateBench) -> dict[str, Any]:
    """The truck drives off; returns once the agent saw it go and the barrier is down."""
    seen = _lane_free_seen(gate)
    await control(gate, "leave")
    for _ in range(100):
        if _lane_free_seen(gate) > seen:
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError("the agent never saw the truck leave the loop")
    return await barrier_reaches(gate, "closed_limit", 15)


async def test_agent_start_shows_red_and_publishes_an_idle_lane(gate, server):
    state = await stub_until(gate, lambda s: s["lamp"] == "red", 10, "red")
    assert lit(state) == ["red"]  # red from the first poll, never anything else
    idle = await server.lane_state("idle")  # the retained message
    assert (idle.signal, idle.passage_id, idle.lane) == ("red", None, LANE)
    assert idle.reason == "gate agent started"


async def test_truck_released_by_a_signed_open_green_then_red_behind_it(gate, server):
    number = "CSQU3054383"
    since = len((await control(gate, "state"))["lamps"])
    passage = await arrive(gate, server, number)
    pid = passage["passage_id"]
    assert passage["lane"] == LANE and passage["direction"] == "in"
    assert passage["node_id"] == NODE
    assert passage["images"], passage
    for ref in passage["images"]:
        assert ref.startswith(f"gate://{NODE}/")
        saved = gate.images / ref.removeprefix(f"gate://{NODE}/")
        assert saved.read_bytes()[:2] == b"\xff\xd8"  # a JPEG
    waiting = await server.lane_state("waiting", passage_id=pid)
    assert waiting.signal == "red"
    state = await control(gate, "state")
    assert state["closed_limit"] and state["lamp"] == "red"

    cid = await server.send(command(gate.key, pid))
    result = await server.result(cid)
    assert result["result"] == "done", result
    state = await barrier_reaches(gate, "open_limit", 10)
    assert state["loops"][0] is True
    state = await stub_until(gate, lambda s: s["lamp"] == "green", 5, "green")
    opened = await server.lane_state("open", passage_id=pid)
    assert opened.signal == "green"
    assert opened.reason == f"passage {pid} released"

    # The truck leaves: red before the arm comes down, then the lane is idle.
    mark = len(server.lane)
    await control(gate, "leave")
    moving = await stub_until(gate, lambda s: s["motion"] == "closing", 10, "closing")
    assert moving["lamp"] == "red", moving
    await barrier_reaches(gate, "closed_limit", 15)
    idle = await server.lane_state("idle", since=mark)
    assert idle.signal == "red" and idle.passage_id is None
    state = await control(gate, "state")
    assert state["closed_limit"] and not state["open_limit"]
    assert lit(state, since) == ["green", "red"]
    states = [lane.state for lane in server.lane]
    assert states[-5:] == ["waiting", "opening", "open", "closing", "idle"], states


async def test_forged_expired_and_wrong_passage_commands_keep_it_red(gate, server):
    since = len((await control(gate, "state"))["lamps"])
    passage = await arrive(gate, server, "TGHU8643952")
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
    assert state["lamp"] == "red"

    hold = await server.send(command(gate.key, pid, action="hold", reasons=("release_missing",)))
    assert (await server.result(hold))["result"] == "done"
    held = await server.lane_state("hold", passage_id=pid)
    assert held.signal == "red"
    assert held.reason == "server decided hold: release_missing"
    await leave(gate)
    assert lit(await control(gate, "state"), since) == []  # never green, never dark


async def test_no_decision_keeps_the_barrier_down_and_the_light_red(gate, server):
    passage = await arrive(gate, server, "MSKU6011672")
    pid = passage["passage_id"]
    held = await server.lane_state("hold", within_s=DECISION_TIMEOUT_S + 10, passage_id=pid)
    assert held.reason == f"no decision within {DECISION_TIMEOUT_S:g} s for {pid}"
    assert held.signal == "red"
    state = await control(gate, "state")
    assert state["closed_limit"] and not state["open_limit"], state
    assert state["position"] == 0.0
    assert state["lamp"] == "red"
    # After the timeout, a late `open` for an older passage still changes nothing.
    late = await server.send(command(gate.key, "P-long-gone"))
    assert (await server.result(late))["result"] == "refused"
    await leave(gate)


async def test_broker_stopped_while_waiting_holds_at_once_and_stays_red(gate):
    since = len((await control(gate, "state"))["lamps"])
    async with watching(gate) as server:
        passage = await arrive(gate, server, "TGHU8746518")
        pid = passage["passage_id"]
        await server.lane_state("waiting", passage_id=pid)
    gate.broker.stop()
    try:
        _wait_log(gate, "no connection to the broker: no decision can arrive", 10)
        state = await control(gate, "state")
        assert state["lamp"] == "red" and state["closed_limit"], state
    finally:
        gate.broker.start()
    # Back online: the lane's retained state says hold, and why.
    async with watching(gate) as server:
        held = await server.lane_state("hold", within_s=30, passage_id=pid)
        assert held.signal == "red"
        assert held.reason == "no connection to the broker: no decision can arrive"
        mark = len(server.lane)
        await leave(gate)
        await server.lane_state("idle", since=mark)
    assert lit(await control(gate, "state"), since) == []

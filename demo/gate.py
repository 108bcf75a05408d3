"""The demo's destination gate: a barrier stub, a camera stub and a gate agent, and the
choreography that drives each arriving demo truck through the lane.

`GateLane` starts the three processes as the field would have them: the barrier and loop
detector on a Modbus RTU pty, a camera serving MJPEG, and `bondwatch-edge gate` with its
own outbox. `Choreographer` plays the world: it follows the trucks' positions on MQTT;
when a truck is reported within `arrival_radius_m` of the gate (the first time in this
run), it shows the truck's container door to the camera, drives the truck onto the loop
(the barrier stub's control channel), and follows the lane on its retained `lane` topic:
released → the truck drives off once the barrier is open; held → it waits `hold_s` for an
officer's override in the console, then leaves for the inspection lane. One truck at a
time, one reading per arrival.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import threading
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt
import yaml

from contract import topics
from contract.payloads import LaneStatus, PayloadError, Position, decode, decode_edge
from contract.version import TOPIC_PREFIX
from demo.scenario import DemoGate
from devices.geodesy import great_circle_m
from devtools.processes import Child

log = logging.getLogger("bondwatch.demo.gate")

#: The demo camera: a few frames a second is plenty for a truck standing on the loop.
CAMERA_FPS = 4
FRAMES_BEFORE = 2
FRAMES_AFTER = 2
#: After the camera shows the next door, the frames of the previous one have left its buffer.
SCENE_SETTLE_S = 1.5
#: The longest wait for a reading and a decision (the OCR models may still be loading).
DECISION_WAIT_S = 180.0
#: The longest wait for the barrier to close behind a truck.
CLOSE_WAIT_S = 30.0
#: Lane states kept in memory.
HISTORY = 200
#: The stop at the gate is this far before the end of the line: the receiver simulator
#: measures the line in its own projection, a few metres off the great-circle length.
END_MARGIN_M = 20.0


def distance_m(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Great-circle distance between two `(lon, lat)` points (GeoJSON order), metres."""
    return great_circle_m(a[1], a[0], b[1], b[0])


def route_length_m(path: Path) -> float:
    """Length of the route line (the LineString with `kind: route`) of a GeoJSON file."""
    for feature in json.loads(path.read_text(encoding="utf-8")).get("features", []):
        geometry = feature.get("geometry") or {}
        if (
            geometry.get("type") == "LineString"
            and (feature.get("properties") or {}).get("kind") == "route"
        ):
            coords = [(float(c[0]), float(c[1])) for c in geometry["coordinates"]]
            return sum(distance_m(a, b) for a, b in itertools.pairwise(coords))
    raise ValueError(f"{path} has no LineString feature with kind 'route'")


def with_stop_at_the_gate(stops: str, playback: Path, dwell_s: float) -> str:
    """`stops` ("km:seconds,…") and a stop at the end of the playback line, where the
    gate is: the truck stands in the lane while it is read and decided, instead of
    jumping back to its origin for the next lap at once (an implausible jump, which the
    server rightly raises as a major alarm — and a hold at the gate)."""
    km = max(0.0, route_length_m(playback) - END_MARGIN_M) / 1000
    final = f"{km:.3f}:{dwell_s:g}"
    return f"{stops},{final}" if stops.strip() else final


def gate_location(route_files: Iterable[Path], gate_id: str) -> tuple[float, float]:
    """The `(lon, lat)` of the gate feature `gate_id` in the route GeoJSON files."""
    for path in route_files:
        features = json.loads(path.read_text(encoding="utf-8")).get("features", [])
        for feature in features:
            props = feature.get("properties") or {}
            if props.get("kind") == "gate" and props.get("gate_id") == gate_id:
                lon, lat = feature["geometry"]["coordinates"][:2]
                return float(lon), float(lat)
    raise ValueError(
        f"gate {gate_id!r} of the demo's gate controller is in none of the routes: "
        "use the gate_id of a gate feature in config/demo/routes/*.geojson"
    )


@dataclass
class ArrivalWatch:
    """Which truck has just arrived at the gate (pure: positions in, arrivals out)."""

    gate: tuple[float, float]
    radius_m: float
    trucks: frozenset[str]
    arrived: set[str] = field(default_factory=set)

    def feed(self, node_id: str, lon: float, lat: float) -> bool:
        """True for the first report of a demo truck within the radius of the gate."""
        if node_id not in self.trucks or node_id in self.arrived:
            return False
        if distance_m((lon, lat), self.gate) > self.radius_m:
            return False
        self.arrived.add(node_id)
        return True


@dataclass(frozen=True)
class Uploads:
    """Where the gate uploads its passages' images, and its device token's file."""

    server_url: str
    token_file: Path


class GateLane:
    """The gate's processes: barrier stub, camera stub, gate agent."""

    def __init__(
        self,
        config: DemoGate,
        run_dir: Path,
        broker: dict[str, Any],
        public_key: Path,
        uploads: Uploads | None = None,
    ) -> None:
        self.config = config
        self.uploads = uploads
        self.run_dir = run_dir / "gate" / config.node_id
        self.broker = broker
        self.public_key = public_key
        self.control: tuple[str, int] = ("127.0.0.1", 0)
        self.camera_base = ""
        self.agent: Child | None = None

    def start(self, spawn: Callable[[Child, str | None], None], logs: Path) -> None:
        cfg = self.config
        self.run_dir.mkdir(parents=True, exist_ok=True)
        barrier = Child.python(
            f"barrier-{cfg.node_id}",
            ["-m", "firmware_stubs.barrier", "--travel-s", f"{cfg.travel_s:g}"],
            logs,
        )
        spawn(barrier, "CONTROL")
        pty = next(line for line in barrier.lines if line.startswith("/"))
        host, port = barrier.lines[-1].split()[1].rsplit(":", 1)
        self.control = (host, int(port))
        camera = Child.python(
            f"camera-{cfg.node_id}",
            [
                "-m",
                "firmware_stubs.camera",
                "--size",
                cfg.frame_size,
                "--fps",
                str(CAMERA_FPS),
            ],
            logs,
        )
        spawn(camera, "READY")
        url = next(line for line in camera.lines if line.startswith("http://"))
        self.camera_base = url.rsplit("/", 1)[0]
        config_path = self.run_dir / "gate.yaml"
        config_path.write_text(yaml.safe_dump(self.agent_config(pty, url), allow_unicode=True))
        self.agent = Child.python(
            f"gate-{cfg.node_id}", ["-m", "edge", "gate", "--config", str(config_path)], logs
        )
        spawn(self.agent, None)

    def agent_config(self, barrier_port: str, camera_url: str) -> dict[str, Any]:
        cfg = self.config
        state = self.run_dir / "state"
        return {
            "node_id": cfg.node_id,
            "broker": self.broker,
            "outbox": {
                "path": str(state / "outbox.sqlite3"),
                "nonce_path": str(state / "nonces.sqlite3"),
            },
            "server_public_key": str(self.public_key),
            "lane": cfg.lane,
            "direction": "in",
            "decision_timeout_s": cfg.decision_timeout_s,
            "barrier": {"type": "modbus_rtu", "port": barrier_port, "unit_id": 1},
            "cameras": [
                {
                    "type": "opencv",
                    "name": "rear",
                    "url": camera_url,
                    "frames_before": FRAMES_BEFORE,
                    "frames_after": FRAMES_AFTER,
                }
            ],
            # The demo camera sees container doors only: no plate to look for.
            "ocr": {"read_plates": False},
            "frames_per_camera": 1,
            "images_dir": str(self.run_dir / "images"),
        } | (
            {
                "evidence": {
                    "server_url": self.uploads.server_url,
                    "token_file": str(self.uploads.token_file),
                    "queue_path": str(state / "uploads.sqlite3"),
                    "retry_max_s": 30,
                }
            }
            if self.uploads is not None
            else {}
        )


@dataclass(frozen=True)
class TruckAtGate:
    node_id: str
    container: str


class Choreographer:
    """Drives each arriving demo truck through the gate lane (in a thread of its own)."""

    def __init__(
        self,
        config: DemoGate,
        lane: GateLane,
        broker: dict[str, Any],
        gate_lonlat: tuple[float, float],
        trucks: list[TruckAtGate],
        visitors: Iterable[tuple[TruckAtGate, float]] = (),
    ) -> None:
        """`visitors`: vehicles without a truck agent (appointment vehicles), each with
        the wall seconds after `start` at which it drives into the lane."""
        self.config = config
        self.lane = lane
        self.broker = broker
        self.visitors = list(visitors)
        self.trucks = {t.node_id: t for t in [*trucks, *(v for v, _ in self.visitors)]}
        self.watch = ArrivalWatch(gate_lonlat, config.arrival_radius_m, frozenset(self.trucks))
        self.history: list[LaneStatus] = []
        """The lane's states as published (the newest `HISTORY` of them)."""
        self._seen = 0  # states dropped from the front of `history`
        self.outcomes: dict[str, str] = {}
        """node id → `released`, `released by override`, `held` or `no decision`."""
        self._changed = asyncio.Event()
        self._arrivals: asyncio.Queue[str] = asyncio.Queue()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._thread: threading.Thread | None = None
        self._ctx = f"gate {config.node_id} lane {config.lane}"

    # ---- lifecycle (called from the demo's main thread) ---------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._main, name="demo-gate", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        loop, task = self._loop, self._task
        if loop is not None and task is not None:
            with contextlib.suppress(RuntimeError):  # the loop already ended
                loop.call_soon_threadsafe(task.cancel)
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _main(self) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._task = asyncio.current_task()
            with contextlib.suppress(asyncio.CancelledError):
                await self.run()

        asyncio.run(main())

    # ---- the world around the lane ------------------------------------------------------

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(self._follow_mqtt(), name="demo-gate-mqtt")
            group.create_task(self._serve_lane(), name="demo-gate-lane")
            group.create_task(self._send_visitors(), name="demo-gate-visitors")

    async def _follow_mqtt(self) -> None:
        protocol = (
            aiomqtt.ProtocolVersion.V311
            if self.broker.get("protocol") == "3.1.1"
            else aiomqtt.ProtocolVersion.V5
        )
        while True:
            try:
                async with aiomqtt.Client(
                    self.broker["host"],
                    int(self.broker["port"]),
                    identifier=f"bondwatch-demo-gate-{self.config.node_id}",
                    protocol=protocol,
                ) as client:
                    await client.subscribe(f"{TOPIC_PREFIX}/truck/+/position", qos=0)
                    await client.subscribe(topics.lane(self.config.node_id), qos=1)
                    async for message in client.messages:
                        self._on_message(message.topic.value, message.payload)
            except aiomqtt.MqttError as err:
                log.debug("%s: broker connection lost (%s); reconnecting", self._ctx, err)
                await asyncio.sleep(1.0)

    def _on_message(self, topic: str, payload: Any) -> None:
        if not isinstance(payload, bytes):
            return
        try:
            info = topics.parse(topic)
            if info.channel == "lane":
                lane = decode_edge("lane", payload)
                assert isinstance(lane, LaneStatus)
                self.history.append(lane)
                if len(self.history) > HISTORY:
                    self._seen += len(self.history) - HISTORY
                    del self.history[:-HISTORY]
                self._changed.set()
                return
            fix = decode(Position, payload)
        except (topics.TopicError, PayloadError):
            return
        if fix.replayed or fix.lat is None or fix.lon is None:
            return  # a late fix from a coverage gap says nothing about now
        if self.watch.feed(fix.node_id, fix.lon, fix.lat):
            self._arrivals.put_nowait(fix.node_id)

    async def _send_visitors(self) -> None:
        started = asyncio.get_running_loop().time()
        for visitor, after_s in sorted(self.visitors, key=lambda v: v[1]):
            await asyncio.sleep(max(0.0, started + after_s - asyncio.get_running_loop().time()))
            log.info("%s: %s (no truck agent) drives up to the gate", self._ctx, visitor.node_id)
            self._arrivals.put_nowait(visitor.node_id)

    async def _serve_lane(self) -> None:
        while True:
            node_id = await self._arrivals.get()
            try:
                await self.drive_through(self.trucks[node_id])
            except (OSError, TimeoutError, ValueError) as err:
                log.error("%s: %s could not drive through: %s", self._ctx, node_id, err)

    # ---- one truck ----------------------------------------------------------------------

    async def drive_through(self, truck: TruckAtGate) -> str:
        """Show the door, drive onto the loop, follow the decision, drive off."""
        cfg = self.config
        log.info(
            "%s: truck %s arrives with container %s", self._ctx, truck.node_id, truck.container
        )
        await self._show_door(truck.container)
        mark = self._mark()
        await self._control("arrive")
        # The passage is published (waiting), or the reading failed (hold).
        found = await self._next(("waiting", "hold"), mark, DECISION_WAIT_S)
        pid = found[1].passage_id if found is not None else None
        decided = await self._next(("open", "hold"), mark, DECISION_WAIT_S, passage_id=pid)
        outcome = "no decision"
        if decided is not None and decided[1].state == "open":
            outcome = "released"
            log.info("%s: %s released — barrier open, lane green", self._ctx, truck.node_id)
        elif decided is not None:
            log.warning(
                "%s: %s held (%s); an officer may override in the console within %g s",
                self._ctx,
                truck.node_id,
                decided[1].reason,
                cfg.hold_s,
            )
            opened = await self._next(("open",), decided[0] + 1, cfg.hold_s, passage_id=pid)
            if opened is not None:
                outcome = "released by override"
                log.info("%s: %s released by an officer's override", self._ctx, truck.node_id)
            else:
                outcome = "held"
        if outcome.startswith("released"):
            await asyncio.sleep(cfg.drive_off_s)
            log.info("%s: %s drives on", self._ctx, truck.node_id)
        else:
            log.info("%s: %s leaves for the inspection lane", self._ctx, truck.node_id)
        mark = self._mark()
        await self._control("leave")
        await self._next(("idle",), mark, CLOSE_WAIT_S)
        self.outcomes[truck.node_id] = outcome
        return outcome

    async def _show_door(self, number: str) -> None:
        query = urllib.parse.urlencode({"number": number})
        url = f"{self.lane.camera_base}/trigger?{query}"
        await asyncio.to_thread(lambda: urllib.request.urlopen(url, timeout=30).read())
        await asyncio.sleep(SCENE_SETTLE_S)

    async def _control(self, line: str) -> dict[str, Any]:
        reader, writer = await asyncio.open_connection(*self.lane.control)
        try:
            writer.write(line.encode() + b"\n")
            await writer.drain()
            answer = (await asyncio.wait_for(reader.readline(), 10)).decode().strip()
        finally:
            writer.close()
        if not answer.startswith("OK "):
            raise ValueError(f"barrier stub refused {line!r}: {answer}")
        state: dict[str, Any] = json.loads(answer[3:])
        return state

    def _mark(self) -> int:
        """The position of the next lane state to come (for `_next`)."""
        return self._seen + len(self.history)

    async def _next(
        self,
        states: tuple[str, ...],
        since: int,
        within_s: float,
        *,
        passage_id: str | None = None,
    ) -> tuple[int, LaneStatus] | None:
        """The first lane state at or after position `since` that is one of `states` (for
        `passage_id` if given), with its position; None after `within_s`."""

        def find() -> tuple[int, LaneStatus] | None:
            for offset, status in enumerate(self.history[max(0, since - self._seen) :]):
                if status.state in states and passage_id in (None, status.passage_id):
                    return max(since, self._seen) + offset, status
            return None

        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within_s):
                while (hit := find()) is None:
                    self._changed.clear()
                    await self._changed.wait()
                return hit
        return None

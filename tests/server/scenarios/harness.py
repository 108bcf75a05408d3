"""The scenario world: a real `bondwatch-server` process, a real Mosquitto, and the
clients a fleet, its gates, the declaration system and an officer would be.

- Trucks' messages are published on their contract topics with QoS 1 (`publish`).
- Gate controllers publish passages and receive the server's signed commands on
  `bondwatch/v1/gate/{node}/command`, verified with the server's public key.
- The declaration system registers declarations and release records with its API
  token; an officer logs in (cookie and CSRF token) for officer actions.
- `settle()` returns once the server has stored *and judged* everything published
  before it: the ingest hands batches to its handlers one after another, so when a
  second marker message is stored, the batch holding the first has been judged.
"""

from __future__ import annotations

import contextlib
import json
import queue
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import sqlalchemy
import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from paho.mqtt.enums import CallbackAPIVersion

from contract import topics
from contract.ids import format_ts, utc_now
from contract.payloads import GateCommand
from contract.signing import (
    CommandVerifier,
    MemoryNonceStore,
    generate_private_key,
    private_key_to_pem,
)
from contract.version import TOPIC_PREFIX
from demo.accounts import create_demo_accounts
from devtools.broker import MosquittoBroker, free_port
from devtools.processes import Child
from tests.lock_reports import write_lock_secrets
from tests.server.scenarios.tracks import DEMO, SCENARIO_LOCK_SECRETS, Message, Truck

MARKER_NODE = "SCENARIO-MARKER"
_LETTERS = [n for n in range(10, 39) if n % 11]  # ISO 6346: A=10 … skipping 11, 22, 33


def container_number(serial: int, owner: str = "BWS") -> str:
    """A valid ISO 6346 freight container number (`U`), check digit included."""
    first_ten = f"{owner}U{serial % 1_000_000:06d}"
    values = [_LETTERS[ord(c) - 65] if c.isalpha() else int(c) for c in first_ten]
    return first_ten + str(sum(v << i for i, v in enumerate(values)) % 11 % 10)


@dataclass
class Declared:
    """A registered declaration (its trip has the same id)."""

    declaration_id: str
    vehicle_id: str
    plate: str
    containers: list[str]
    lock_ids: list[str]
    origin_gate: str
    destination_gate: str
    route_id: str
    credit: str
    time_limit_min: int


class TruckLink:
    """A truck agent's own MQTT connection, with its last will (availability `offline`
    with the seq reserved when it connects and the connect time as `ts`)."""

    def __init__(self, broker: MosquittoBroker, truck: Truck) -> None:
        self.truck = truck
        will_seq = truck.next_seq  # reserved, as edge.link does before connecting
        truck.next_seq += 1
        will = {
            "node_id": truck.node_id,
            "seq": will_seq,
            "ts": format_ts(truck.now),
            "state": "offline",
        }
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=truck.node_id, protocol=mqtt.MQTTv5
        )
        self.client.will_set(
            topics.availability("truck", truck.node_id), json.dumps(will), qos=1, retain=True
        )
        self.client.connect(broker.host, broker.port, keepalive=30)
        self.client.loop_start()
        truck.availability("online")

    def publish(self, messages: Iterable[Message]) -> None:
        infos = [
            self.client.publish(m.topic, m.body(), qos=1, retain=m.channel == "availability")
            for m in messages
        ]
        for info in infos:
            info.wait_for_publish(20)
            assert info.is_published()

    def cut(self) -> None:
        """The connection is lost (no DISCONNECT): the broker publishes the will."""
        self.client.loop_stop()
        sock = self.client.socket()
        assert sock is not None
        sock.close()

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@dataclass
class World:
    root: Path
    broker: MosquittoBroker
    http_port: int = field(default_factory=free_port)
    server: Child | None = None
    token: str = ""
    passwords: dict[str, str] = field(default_factory=dict)
    gate_seq: dict[str, int] = field(default_factory=dict)
    marker_seq: int = 0
    declared: int = 0
    #: The store (default: SQLite in `root`), and settings of the server's `ingest`
    #: beside the scenarios' own.
    storage_url: str = ""
    ingest: dict[str, Any] = field(default_factory=dict)
    #: The rule thresholds per credit class (default: the demo's).
    profiles: Path = DEMO / "profiles.yaml"

    def __post_init__(self) -> None:
        self.db = self.root / "server.db"
        self.storage_url = self.storage_url or f"sqlite:///{self.db}"
        self._engine: sqlalchemy.Engine | None = None
        key = generate_private_key()
        self.public_key: Ed25519PublicKey = key.public_key()
        self.key_file = self.root / "server.pem"
        self.key_file.write_bytes(private_key_to_pem(key))
        self.base = f"http://127.0.0.1:{self.http_port}"
        self.commands: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self._seen_commands: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()

    # ---- start and stop ------------------------------------------------------------
    def start(self) -> World:
        credentials = create_demo_accounts(self.storage_url)
        self.token = credentials.integration_token
        self.passwords = credentials.passwords
        lock_secrets = write_lock_secrets(self.root / "lock-secrets.yaml", SCENARIO_LOCK_SECRETS)
        config = self.root / "server.yaml"
        config.write_text(
            yaml.safe_dump(
                {
                    "broker": {
                        "host": self.broker.host,
                        "port": self.broker.port,
                        "client_id": f"srv-scenarios-{self.http_port}",
                    },
                    "http": {"host": "127.0.0.1", "port": self.http_port},
                    "storage": {"url": self.storage_url},
                    "signing_key_file": str(self.key_file),
                    "gates": {"lock_secrets_file": str(lock_secrets)},
                    "geography": {
                        "profiles": str(self.profiles),
                        "routes": [str(p) for p in sorted((DEMO / "routes").glob("*.geojson"))],
                        "zones": [str(DEMO / "zones.geojson")],
                    },
                    # Simulated trucks play hours of a trip in seconds: their fixes are
                    # dated up to a day ahead of the server's clock, which a real device's
                    # never are (tests/hil/test_hostile_devices.py keeps the default).
                    "ingest": {"batch_wait_ms": 5, "max_clock_ahead_s": 86_400, **self.ingest},
                }
            ),
            encoding="utf-8",
        )
        self.server = Child.python(
            "server", ["-m", "server", "--config", str(config)], self.root / "logs"
        ).start(ready="bondwatch-server")
        self.api = httpx.Client(
            base_url=f"{self.base}/api/v1",
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=20,
        )
        self.officer = self.login("officer")
        self.mqtt = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"scenario-fleet-{uuid.uuid4().hex[:8]}",
            protocol=mqtt.MQTTv5,
        )
        self.mqtt.max_inflight_messages_set(200)
        self.mqtt.on_message = self._on_command
        self.mqtt.connect(self.broker.host, self.broker.port)
        self.mqtt.loop_start()
        subscribed = self.mqtt.subscribe(f"{TOPIC_PREFIX}/gate/+/command", qos=1)
        assert subscribed[0] == mqtt.MQTT_ERR_SUCCESS
        self.wait_for(lambda: self.api.get("/healthz").json()["broker_connected"], 20)
        return self

    def stop(self) -> None:
        if getattr(self, "mqtt", None) is not None:
            self.mqtt.loop_stop()
            self.mqtt.disconnect()
        for client in (getattr(self, "api", None), getattr(self, "officer", None)):
            if client is not None:
                client.close()
        if self.server is not None:
            self.server.stop()
        if self._engine is not None:
            self._engine.dispose()

    def login(self, username: str) -> httpx.Client:
        client = httpx.Client(base_url=f"{self.base}/api/v1", timeout=20)
        res = client.post(
            "/auth/login", json={"username": username, "password": self.passwords[username]}
        )
        assert res.status_code == 200, res.text
        client.headers["X-CSRF-Token"] = res.json()["csrf_token"]
        return client

    # ---- MQTT ------------------------------------------------------------------------
    def _on_command(self, _client: Any, _userdata: Any, message: Any) -> None:
        self.commands.put((message.topic, bytes(message.payload)))

    def publish(self, messages: Iterable[Message]) -> int:
        """Publish truck messages in the given order (QoS 1) and wait for the broker."""
        infos = [self.mqtt.publish(m.topic, m.body(), qos=1) for m in messages]
        for info in infos:
            info.wait_for_publish(20)
            assert info.is_published()
        return len(infos)

    def _publish_raw(self, topic: str, body: dict[str, Any]) -> None:
        info = self.mqtt.publish(topic, json.dumps(body, ensure_ascii=False), qos=1)
        info.wait_for_publish(20)
        assert info.is_published()

    def settle(self, timeout: float = 60.0) -> None:
        """Wait until everything published so far has been stored and judged."""
        for _ in range(2):
            self.marker_seq += 1
            seq = self.marker_seq
            self._publish_raw(
                topics.health("truck", MARKER_NODE),
                {
                    "node_id": MARKER_NODE,
                    "seq": seq,
                    "ts": format_ts(utc_now()),
                    "device": "gnss",
                    "status": "ok",
                    "detail": "scenario marker",
                },
            )
            self.wait_for(lambda s=seq: self.stored(MARKER_NODE, s), timeout)
        # The rules run in the judge workers, behind the store: wait until every worker
        # is up and has judged everything handed to it (on a loaded machine they lag by
        # a second or more).
        self.wait_for(lambda: self.judge_metrics() == (0.0, 0.0), timeout)

    def judge_metrics(self) -> tuple[float, float]:
        """Messages stored and handed to the judge workers, not judged yet, and judge
        workers not running or not ready (`/metrics`)."""
        res = self.api.get("/metrics")
        assert res.status_code == 200, res.text
        found = {"bondwatch_judge_pending_messages": 0.0, "bondwatch_judge_workers_down": 0.0}
        for line in res.text.splitlines():
            name, _, value = line.partition(" ")
            if name in found:
                found[name] = float(value)
        # absent: nothing handed to a judge yet, or no worker process (`judge: thread`)
        return found["bondwatch_judge_pending_messages"], found["bondwatch_judge_workers_down"]

    def stored(self, node_id: str, seq: int) -> bool:
        if not self.storage_url.startswith("sqlite"):
            if self._engine is None:
                self._engine = sqlalchemy.create_engine(self.storage_url)
            with self._engine.connect() as conn:
                found = conn.execute(
                    sqlalchemy.text(
                        "SELECT 1 FROM edge_messages WHERE node_id = :node AND seq = :seq"
                    ),
                    {"node": node_id, "seq": seq},
                ).first()
            return found is not None
        with sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=10) as conn:
            row = conn.execute(
                "SELECT 1 FROM edge_messages WHERE node_id = ? AND seq = ?", (node_id, seq)
            ).fetchone()
        return row is not None

    # ---- declarations and gates ------------------------------------------------------
    def declare(
        self,
        truck: Truck,
        *,
        credit: str = "general",
        time_limit_min: int = 180,
        containers: Sequence[str] | None = None,
        plate: str | None = None,
    ) -> Declared:
        self.declared += 1
        containers = containers or [container_number(self.declared * 7919)]
        route = truck.route
        gates = {g.site_id: g.gate_id for g in truck.geo.gates}
        assert route.origin_site_id is not None and route.destination_site_id is not None
        body = {
            "declaration_id": f"D-{truck.node_id}",
            "enterprise": {"code": "4401960001", "name": "示范供应链", "credit": credit},
            "vehicle_id": truck.node_id,
            "plate": plate or f"粤A·{truck.node_id[-5:]}",
            "lock_ids": [truck.lock_id],
            "containers": list(containers),
            "origin_gate": gates[route.origin_site_id],
            "destination_gate": gates[route.destination_site_id],
            "route_id": route.route_id,
            "time_limit_min": time_limit_min,
        }
        res = self.api.post("/declarations", json=body)
        assert res.status_code == 201, res.text
        return Declared(
            body["declaration_id"],  # type: ignore[arg-type]
            truck.node_id,
            body["plate"],  # type: ignore[arg-type]
            list(containers),
            [truck.lock_id],
            body["origin_gate"],  # type: ignore[arg-type]
            body["destination_gate"],  # type: ignore[arg-type]
            route.route_id,
            credit,
            time_limit_min,
        )

    def release(self, declared: Declared, at: datetime, release_id: str | None = None) -> Any:
        res = self.api.post(
            f"/declarations/{declared.declaration_id}/release",
            json={
                "release_id": release_id or f"R-{declared.declaration_id}",
                "released_at": format_ts(at),
            },
        )
        assert res.status_code == 201, res.text
        return res.json()

    def passage(
        self,
        gate: str,
        at: datetime,
        containers: Sequence[str],
        plate: str | None,
        passage_id: str | None = None,
        lane: str = "L1",
    ) -> str:
        """Publish a gate passage (reliable readings); its id."""
        self.gate_seq[gate] = seq = self.gate_seq.get(gate, 0) + 1
        passage_id = passage_id or f"P-{gate}-{uuid.uuid4().hex[:10]}"
        self._publish_raw(
            topics.passage(gate),
            {
                "node_id": gate,
                "seq": seq,
                "ts": format_ts(at),
                "passage_id": passage_id,
                "lane": lane,
                "direction": "in",
                "containers": [
                    {
                        "number": n,
                        "confidence": 0.97,
                        "check_digit_ok": True,
                        "needs_review": False,
                    }
                    for n in containers
                ],
                "plate": (
                    {"text": plate, "confidence": 0.95, "needs_review": False} if plate else None
                ),
                "images": [f"gate://{gate}/{passage_id}/front.jpg"],
            },
        )
        return passage_id

    def lane_waiting(self, gate: str, lane: str, passage_id: str) -> None:
        """The gate reports `lane` waiting for the decision of `passage_id` (its truck
        at the barrier), as a gate agent does once it has published the passage; stored
        when this returns."""
        self.gate_seq[gate] = seq = self.gate_seq.get(gate, 0) + 1
        self._publish_raw(
            topics.lane(gate),
            {
                "node_id": gate,
                "seq": seq,
                "ts": format_ts(utc_now()),
                "lane": lane,
                "state": "waiting",
                "passage_id": passage_id,
                "signal": "red",
            },
        )
        self.wait_for(lambda: self.stored(gate, seq), 20)

    def command_for(self, passage_id: str, timeout: float = 15.0) -> GateCommand:
        """The gate command for a passage, its signature verified; fails without one."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                for topic, payload in self._seen_commands:
                    if json.loads(payload).get("passage_id") == passage_id:
                        return self._verified(topic, payload)
            try:
                item = self.commands.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no command for passage {passage_id} in {timeout}s") from None
            with self._lock:
                self._seen_commands.append(item)

    def all_commands_for(self, passage_id: str, wait_s: float) -> list[GateCommand]:
        """Every command received for a passage, after waiting `wait_s` for more."""
        deadline = time.monotonic() + wait_s
        while (left := deadline - time.monotonic()) > 0:
            try:
                item = self.commands.get(timeout=left)
            except queue.Empty:
                break
            with self._lock:
                self._seen_commands.append(item)
        with self._lock:
            return [
                self._verified(topic, payload)
                for topic, payload in self._seen_commands
                if json.loads(payload).get("passage_id") == passage_id
            ]

    def _verified(self, topic: str, payload: bytes) -> GateCommand:
        node = topic.split("/")[3]
        assert topic == topics.command("gate", node)
        outcome = CommandVerifier(self.public_key, node, MemoryNonceStore()).verify(
            GateCommand, payload
        )
        assert outcome.ok, outcome.detail
        assert isinstance(outcome.command, GateCommand)
        return outcome.command

    def pass_gate(self, declared: Declared, gate: str, at: datetime) -> GateCommand:
        """The declared truck presents itself at `gate`; the server's command."""
        passage_id = self.passage(gate, at, declared.containers, declared.plate)
        command = self.command_for(passage_id)
        assert command.node_id == gate and command.passage_id == passage_id
        return command

    def begin(
        self,
        node_id: str,
        route_id: str = "R-HP-BY",
        *,
        seed: int = 0,
        start: datetime | None = None,
        credit: str = "general",
        **declaration: Any,
    ) -> tuple[Truck, Declared]:
        """A truck sealed and waiting a minute in its origin site, declared, and
        departed through the origin gate (its trip in transit from `truck.now`)."""
        truck = Truck(node_id, route_id, start or utc_now().replace(microsecond=0), seed=seed)
        truck.lock("sealed", "sealed")
        truck.park(60)
        declared = self.declare(truck, credit=credit, **declaration)
        self.depart(truck, declared)
        return truck, declared

    def run(self, truck: Truck) -> list[dict[str, Any]]:
        """Publish what the truck sent since, let the server judge it; the trip's alarms."""
        self.publish(truck.take())
        self.settle()
        return self.alarms(f"D-{truck.node_id}")

    def depart(self, truck: Truck, declared: Declared) -> GateCommand:
        """Publish what the truck sent until now, then pass the departure gate at its
        current time: the trip starts there."""
        self.publish(truck.take())
        self.settle()
        command = self.pass_gate(declared, declared.origin_gate, truck.now)
        assert (command.action, command.reasons) == ("open", []), command
        return command

    def arrive(self, truck: Truck, declared: Declared) -> GateCommand:
        """Publish the rest of the truck's messages, let the server judge them, then pass
        the destination gate at the truck's current time."""
        self.publish(truck.take())
        self.settle()
        return self.pass_gate(declared, declared.destination_gate, truck.now)

    # ---- reads ------------------------------------------------------------------------
    def trip(self, trip_id: str, **params: Any) -> dict[str, Any]:
        res = self.api.get(f"/trips/{trip_id}", params=params)
        assert res.status_code == 200, res.text
        found: dict[str, Any] = res.json()
        return found

    def alarms(self, trip_id: str) -> list[dict[str, Any]]:
        res = self.api.get("/alarms", params={"trip_id": trip_id, "limit": 1000})
        assert res.status_code == 200, res.text
        found: list[dict[str, Any]] = res.json()
        return found

    def alarm(self, alarm_id: int) -> dict[str, Any]:
        res = self.api.get(f"/alarms/{alarm_id}")
        assert res.status_code == 200, res.text
        found: dict[str, Any] = res.json()
        return found

    def children(self) -> dict[str, int]:
        """The server's child processes, by name (`ps -o comm`)."""
        assert self.server is not None and self.server.proc is not None
        pid = self.server.proc.pid
        found = {}
        for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
            with contextlib.suppress(FileNotFoundError):  # it exited meanwhile
                found[Path(f"/proc/{child}/comm").read_text().strip()] = int(child)
        return found

    @staticmethod
    def wait_for(check: Any, timeout: float, interval: float = 0.05) -> None:
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            try:
                if check():
                    return
            except (httpx.HTTPError, sqlite3.Error, sqlalchemy.exc.SQLAlchemyError) as err:
                # parts still starting
                last = err
            time.sleep(interval)
        raise AssertionError(f"condition not met within {timeout}s (last error: {last})")

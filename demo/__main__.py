"""`bondwatch-demo` — the whole system on one machine, with simulated trucks.

A broker (Mosquitto when installed, the embedded amqtt otherwise), the server with
SQLite, one simulated GNSS receiver (and e-lock, sealed at departure) per truck on
virtual serial ports, one truck agent per truck, and at the destination gate a barrier
stub, a camera stub and a gate agent that read, release or hold each arriving truck
(`demo/gate.py`). A truck with a cellular e-lock (`cellular: true`) has neither
receiver stub nor agent: its lock has its own GNSS and reports over TCP through the
JT/T 808 gateway (`bondwatch-jt808`). Every part runs as its own process, as it would in
the field.
"""

from __future__ import annotations

import argparse
import json
import logging
import secrets
import shutil
import signal
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from contract.broker import DEFAULT_SERVER_CLIENT_ID
from contract.cellular_registry import load_cellular_registry
from contract.config_file import load_model
from contract.signing import generate_private_key, private_key_to_pem, public_key_to_pem
from contract.version import API_PREFIX
from demo.accounts import DemoCredentials, create_demo_accounts
from demo.gate import (
    Choreographer,
    GateLane,
    TruckAtGate,
    Uploads,
    gate_location,
    with_stop_at_the_gate,
)
from demo.scenario import DemoTruck, Scenario
from devtools.broker import PROJECT_ROOT, MosquittoBroker, find_mosquitto, free_port
from devtools.processes import Child

log = logging.getLogger("bondwatch.demo")
DEMO_CONFIG = PROJECT_ROOT / "config" / "demo"
#: The cellular devices of the demo (the gateway's registry; the broker's ACL reads it too).
JT808_REGISTRY = DEMO_CONFIG / "jt808-registry.yaml"


def _port_free(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _wait_http(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as res:
                if res.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout}s")


def _post(url: str, body: dict[str, Any], token: str) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as res:
            return res.status, json.loads(res.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


class Demo:
    def __init__(self, run_dir: Path, http_port: int, scenario: Scenario) -> None:
        self.run_dir = run_dir
        self.http_port = http_port
        self.scenario = scenario
        self.children: list[Child] = []
        self.broker: MosquittoBroker | None = None
        self.credentials: DemoCredentials | None = None
        self.gate: GateLane | None = None
        self.choreographer: Choreographer | None = None

    def start(self) -> str:
        if self.run_dir.exists():
            shutil.rmtree(self.run_dir)
        logs = self.run_dir / "logs"
        logs.mkdir(parents=True)
        broker_host, broker_port, protocol = self._start_broker(logs)
        key = generate_private_key()
        keys = self.run_dir / "keys"
        keys.mkdir()
        (keys / "server.pem").write_bytes(private_key_to_pem(key))
        (keys / "server.pub").write_bytes(public_key_to_pem(key.public_key()))
        # The audit log signs its checkpoints with a key of its own (never the command key).
        (keys / "audit.pem").write_bytes(private_key_to_pem(generate_private_key()))
        lock_secrets = self._write_lock_secrets(keys)
        broker = {"host": broker_host, "port": broker_port, "protocol": protocol}
        database = f"sqlite:///{self.run_dir / 'bondwatch.db'}"
        gate_nodes = [self.scenario.gate.node_id] if self.scenario.gate else []
        self.credentials = create_demo_accounts(database, gate_nodes)
        server_cfg = self.run_dir / "server.yaml"
        server_cfg.write_text(
            yaml.safe_dump(
                {
                    "broker": {**broker, "client_id": DEFAULT_SERVER_CLIENT_ID},
                    "http": {"host": "127.0.0.1", "port": self.http_port},
                    "storage": {"url": database},
                    "geography": {
                        "routes": sorted(
                            str(p) for p in (DEMO_CONFIG / "routes").glob("*.geojson")
                        ),
                        "zones": [str(DEMO_CONFIG / "zones.geojson")],
                    },
                    "signing_key_file": str(keys / "server.pem"),
                    "audit": {
                        "checkpoints": {
                            "key_file": str(keys / "audit.pem"),
                            "folder": str(self.run_dir / "audit-checkpoints"),
                            "interval_s": 60,
                        }
                    },
                    # The same per-lock secrets as the stub locks: their reports' MACs
                    # check, and an officer's remote unseal makes tokens they accept.
                    "gates": {"lock_secrets_file": str(lock_secrets)},
                    "trips": {"start_on_first_fix": True},  # no departure gate controller here
                    # The simulated trucks start at the wall clock and run `time_scale`
                    # times faster: their clocks run ahead of the server's by design.
                    "ingest": {"max_clock_ahead_s": 86_400},
                    "evidence": {"storage": {"path": str(self.run_dir / "evidence")}},
                },
                allow_unicode=True,
            )
        )
        base = f"http://127.0.0.1:{self.http_port}"
        routes = sorted((DEMO_CONFIG / "routes").glob("*.geojson"))
        gate_lonlat = (
            gate_location(routes, self.scenario.gate.node_id) if self.scenario.gate else None
        )
        self._spawn(Child.python("server", ["-m", "server", "--config", str(server_cfg)], logs))
        _wait_http(f"{base}/healthz", 30)
        # The gate first: its OCR models load while the trucks start, and it sees every fix.
        gate = self.scenario.gate
        if gate is not None and gate_lonlat is not None:
            token_file = keys / f"device-{gate.node_id}.token"
            token_file.write_text(self.credentials.device_tokens[gate.node_id] + "\n")
            token_file.chmod(0o600)
            self.gate = GateLane(
                gate, self.run_dir, broker, keys / "server.pub", Uploads(base, token_file)
            )
            self.gate.start(self._spawn, logs)
            self.choreographer = Choreographer(
                gate,
                self.gate,
                broker,
                gate_lonlat,
                [
                    TruckAtGate(t.node_id, str(t.declaration["containers"][0]))
                    for t in self.scenario.trucks
                    if t.declaration.get("containers")
                    and t.declaration.get("destination_gate") == gate.node_id
                ],
                [(TruckAtGate(v.name, v.door), v.arrive_after_s) for v in self.scenario.visitors],
            )
            self._book(base, gate.node_id)
            self.choreographer.start()
        start_time = time.time()
        jt808_port = self._start_jt808(broker, keys, logs)
        for truck in self.scenario.trucks:
            self._declare(base, truck)
            stops = truck.stops
            if gate is not None and truck.declaration.get("destination_gate") == gate.node_id:
                stops = with_stop_at_the_gate(
                    stops, DEMO_CONFIG / truck.playback, gate.dwell_s * self.scenario.time_scale
                )
            if truck.cellular:
                assert jt808_port is not None
                self._start_cellular_lock(truck, logs, (start_time, time.time()), stops, jt808_port)
                continue
            stub = Child.python(
                f"gnss-{truck.node_id}",
                [
                    "-m",
                    "firmware_stubs.gnss",
                    "--route",
                    str(DEMO_CONFIG / truck.playback),
                    "--zones",
                    str(DEMO_CONFIG / "zones.geojson"),
                    "--speed-kmh",
                    str(truck.speed_kmh),
                    "--stops",
                    stops,
                    "--time-scale",
                    str(self.scenario.time_scale),
                    "--start-time",
                    time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start_time)),
                    "--loop",
                ],
                logs,
            )
            self._spawn(stub, ready="READY")
            # The stub's first epoch (its `--start-time`) follows its READY at once; the
            # lock's reports keep to the same simulated clock from there.
            clock = (start_time, time.time())
            port = next(line for line in stub.lines if line.startswith("/"))
            lock = self._start_lock(truck, logs, clock) if truck.elock else None
            agent_cfg = self.run_dir / f"truck-{truck.node_id}.yaml"
            agent_cfg.write_text(
                yaml.safe_dump(
                    {
                        "node_id": truck.node_id,
                        "broker": broker,
                        "outbox": {
                            "path": str(self.run_dir / "state" / truck.node_id / "outbox.sqlite3"),
                            "nonce_path": str(
                                self.run_dir / "state" / truck.node_id / "nonces.sqlite3"
                            ),
                        },
                        "server_public_key": str(keys / "server.pub"),
                        "gnss": {"type": "nmea", "port": port, "baudrate": 9600},
                        "reporting": {"interval_s": 10, "min_interval_s": 1, "distance_m": 100},
                    }
                    | ({"lock": lock} if lock is not None else {})
                )
            )
            self._spawn(
                Child.python(
                    f"truck-{truck.node_id}",
                    ["-m", "edge", "truck", "--config", str(agent_cfg)],
                    logs,
                )
            )
        return base

    def _write_lock_secrets(self, keys: Path) -> Path:
        """A fresh secret for every lock of the scenario: one file per lock for its stub,
        and the server's YAML mapping of them all. Returns the mapping's path."""
        secrets_dir = keys / "locks"
        secrets_dir.mkdir(mode=0o700)
        mapping: dict[str, str] = {}
        for truck in self.scenario.trucks:
            if truck.elock:
                for lock_id in (str(x) for x in truck.declaration.get("lock_ids", [])):
                    mapping[lock_id] = secrets.token_hex(16)
                    (secrets_dir / lock_id).write_text(mapping[lock_id], encoding="utf-8")
        path = keys / "lock-secrets.yaml"
        path.write_text(yaml.safe_dump(mapping), encoding="utf-8")
        return path

    def _book(self, base: str, gate_id: str) -> None:
        """Book the scenario's appointment vehicles at the gate, as the declaration system
        does (docs/gates.md, "Appointments")."""
        assert self.credentials is not None
        now = time.time()
        for booking in self.scenario.appointments:
            start, end = (now + minutes * 60 for minutes in booking.window_min)
            body = {
                "appointment_id": booking.appointment_id,
                "plate": booking.plate,
                "containers": booking.containers,
                "gate_id": gate_id,
                "direction": booking.direction,
                "window_start": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start)),
                "window_end": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(end)),
                "purpose": booking.purpose,
                "enterprise": booking.enterprise,
            }
            token = self.credentials.integration_token
            status, answer = _post(f"{base}{API_PREFIX}/appointments", body, token)
            if status != 201:
                raise RuntimeError(
                    f"appointment {booking.appointment_id} refused: {status} {answer}"
                )

    def _declare(self, base: str, truck: DemoTruck) -> None:
        """Register the truck's transit, and its release record if the scenario has one."""
        assert self.credentials is not None
        token = self.credentials.integration_token
        declaration = {
            **truck.declaration,
            "vehicle_id": truck.node_id,
            "plate": truck.plate,
            "route_id": truck.route_id,
        }
        status, body = _post(f"{base}{API_PREFIX}/declarations", declaration, token)
        if status != 201:
            raise RuntimeError(f"declaration for {truck.node_id} refused: {status} {body}")
        if truck.release == "none":
            return
        declaration_id = str(truck.declaration["declaration_id"])
        record: dict[str, Any] = (
            {"inspect": True}
            if truck.release == "inspect"
            else {
                "release_id": f"R{declaration_id}",
                "released_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }
        )
        status, body = _post(
            f"{base}{API_PREFIX}/declarations/{declaration_id}/release", record, token
        )
        if status != 201:
            raise RuntimeError(f"release record for {declaration_id} refused: {status} {body}")

    def _start_lock(
        self, truck: DemoTruck, logs: Path, clock: tuple[float, float]
    ) -> dict[str, Any]:
        """The truck's e-lock, sealed for its trip (the demo simulates its first lock).
        `clock`: (simulated start, wall instant of it), Unix seconds: its reports carry
        the truck's simulated time, as its fixes do."""
        lock_ids = [str(x) for x in truck.declaration.get("lock_ids", [])]
        if not lock_ids:
            raise RuntimeError(f"truck {truck.node_id} has elock: true but no lock_ids")
        lock_id = lock_ids[0]
        phone = f"1380000{self.scenario.trucks.index(truck) + 1:04d}"
        stub = Child.python(
            f"elock-{lock_id}",
            [
                "-m",
                "firmware_stubs.elock",
                *self._lock_args(truck, lock_id, phone, "10", clock),
            ],
            logs,
        )
        self._spawn(stub, ready="READY")
        port = next(line for line in stub.lines if line.startswith("/"))
        return {"type": "jt808", "port": port, "lock_ids": [lock_id], "phones": {lock_id: phone}}

    def _start_jt808(self, broker: dict[str, Any], keys: Path, logs: Path) -> int | None:
        """The JT/T 808 gateway for the cellular trucks (none: None). Its registry is
        config/demo/jt808-registry.yaml, which the broker's ACL is generated from too."""
        if not any(truck.cellular for truck in self.scenario.trucks):
            return None
        (keys / "jt808-auth.secret").write_text(secrets.token_hex(32), encoding="utf-8")
        state = self.run_dir / "state" / "jt808"
        state.mkdir(parents=True, exist_ok=True)
        config = self.run_dir / "jt808.yaml"
        config.write_text(
            yaml.safe_dump(
                {
                    "gateway_id": "jt808-gateway-1",
                    "broker": broker,
                    "store": {
                        "path": str(state / "store.sqlite3"),
                        "nonce_path": str(state / "nonces.sqlite3"),
                    },
                    "server_public_key": str(keys / "server.pub"),
                    "registry": str(JT808_REGISTRY),
                    "auth_secret_file": str(keys / "jt808-auth.secret"),
                    "listen": {"host": "127.0.0.1", "port": 0},
                }
            )
        )
        child = Child.python("jt808", ["-m", "edge.jt808", "--config", str(config)], logs)
        self._spawn(child, ready="READY")
        ready = next(line for line in child.lines if line.startswith("READY"))
        return int(ready.split("tcp=")[1].split()[0])

    def _start_cellular_lock(
        self, truck: DemoTruck, logs: Path, clock: tuple[float, float], stops: str, port: int
    ) -> None:
        """The truck's 4G e-lock: its own GNSS along the playback line, reporting every
        10 simulated seconds through the gateway (its phone from the gateway's registry)."""
        lock_id = str(truck.declaration["lock_ids"][0])
        registry = load_cellular_registry(JT808_REGISTRY)
        device = next((d for d in registry.devices if d.lock_id == lock_id), None)
        if device is None or device.node_id != truck.node_id:
            raise RuntimeError(
                f"cellular truck {truck.node_id}: lock {lock_id} is not registered for it in "
                f"{JT808_REGISTRY}"
            )
        stub = Child.python(
            f"elock-{lock_id}",
            [
                "-m",
                "firmware_stubs.elock.cellular",
                "--gateway",
                f"127.0.0.1:{port}",
                "--terminal-id",
                device.terminal_id or lock_id[:7],
                "--route",
                str(DEMO_CONFIG / truck.playback),
                "--speed-kmh",
                str(truck.speed_kmh),
                "--stops",
                stops,
                "--loop",
                "--",
                *self._lock_args(
                    truck, lock_id, device.phone, str(10 / self.scenario.time_scale), clock
                ),
            ],
            logs,
        )
        self._spawn(stub, ready="READY")

    def _lock_args(
        self,
        truck: DemoTruck,
        lock_id: str,
        phone: str,
        interval: str,
        clock: tuple[float, float],
    ) -> list[str]:
        """The lock stub's own arguments, wired or cellular: sealed for the truck's trip,
        reporting every `interval` seconds in the truck's simulated time (`clock`)."""
        return [
            "--lock-id",
            lock_id,
            "--phone",
            phone,
            "--secret-file",
            str(self.run_dir / "keys" / "locks" / lock_id),
            "--state-file",
            str(self._lock_state_file(truck, lock_id)),
            "--interval",
            interval,
            "--sealed-for",
            str(truck.declaration["declaration_id"]),
            "--time-scale",
            str(self.scenario.time_scale),
            "--start-time",
            time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(clock[0])),
            "--start-wall",
            repr(clock[1]),
        ]

    def _lock_state_file(self, truck: DemoTruck, lock_id: str) -> Path:
        """Where the stub lock keeps its counters (its flash), beside the truck's outbox."""
        folder = self.run_dir / "state" / truck.node_id
        folder.mkdir(parents=True, exist_ok=True)
        return folder / f"elock-{lock_id}.json"

    def _spawn(self, child: Child, ready: str | None = None) -> None:
        self.children.append(child)
        child.start(ready=ready)

    def _start_broker(self, logs: Path) -> tuple[str, int, str]:
        if find_mosquitto() is not None:
            self.broker = MosquittoBroker(self.run_dir / "mosquitto")
            self.broker.start()
            print(f"broker: Mosquitto on 127.0.0.1:{self.broker.port}", flush=True)
            return self.broker.host, self.broker.port, "5"
        port = free_port()
        conf = self.run_dir / "amqtt.yaml"
        conf.write_text(
            yaml.safe_dump(
                {
                    "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{port}"}},
                    "plugins": {
                        "amqtt.plugins.authentication.AnonymousAuthPlugin": {
                            "allow_anonymous": True
                        }
                    },
                }
            )
        )
        amqtt = shutil.which("amqtt") or str(Path(sys.executable).parent / "amqtt")
        self._spawn(Child("broker-amqtt", [amqtt, "-c", str(conf)], logs))
        deadline = time.monotonic() + 15
        while _port_free(port) and time.monotonic() < deadline:
            time.sleep(0.1)
        print(
            f"broker: embedded amqtt (MQTT 3.1.1) on 127.0.0.1:{port} — "
            "install mosquitto for production parity",
            flush=True,
        )
        return "127.0.0.1", port, "3.1.1"

    def stop(self) -> None:
        if self.choreographer is not None:
            self.choreographer.stop()
        for child in reversed(self.children):
            child.stop()
        if self.broker is not None:
            self.broker.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bondwatch-demo", description=__doc__)
    parser.add_argument("--port", type=int, default=8080, help="console port (next free if taken)")
    parser.add_argument("--run-dir", type=Path, default=PROJECT_ROOT / "var" / "demo")
    parser.add_argument("--scenario", type=Path, default=DEMO_CONFIG / "scenario.yaml")
    parser.add_argument(
        "--duration", type=float, default=0, help="stop after N seconds (0 = run until Ctrl-C)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    scenario = load_model(args.scenario, Scenario)
    port = args.port if _port_free(args.port) else free_port()
    demo = Demo(args.run_dir, port, scenario)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        base = demo.start()
        print(f"\nBondWatch demo running — console: {base}/", flush=True)
        assert demo.credentials is not None
        print("  accounts (new passwords each run):", flush=True)
        for username, password in demo.credentials.passwords.items():
            print(f"    {username:<11} {password}", flush=True)
        print(f"  REST API: {base}/api/v1/trips   OpenAPI: {base}/docs", flush=True)
        print(f"  logs: {args.run_dir / 'logs'}   stop with Ctrl-C\n", flush=True)
        stop.wait(args.duration or None)
    except KeyboardInterrupt:
        pass
    finally:
        print("stopping the demo…", flush=True)
        demo.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

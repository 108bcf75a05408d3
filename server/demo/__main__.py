"""`bondwatch-demo` — the whole system on one machine, with simulated trucks.

A broker (Mosquitto when installed, the embedded amqtt otherwise), the server with
SQLite, one simulated GNSS receiver (and e-lock, sealed at departure) per truck on
virtual serial ports, one truck agent per truck, and at the destination gate a barrier
stub, a camera stub and a gate agent that read, release or hold each arriving truck
(`server/demo/gate.py`). Every part runs as its own process, as it would in the field.
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

from contract.config_file import load_model
from contract.signing import generate_private_key, private_key_to_pem, public_key_to_pem
from server.demo.accounts import DemoCredentials, create_demo_accounts
from server.demo.broker import PROJECT_ROOT, MosquittoBroker, find_mosquitto, free_port
from server.demo.gate import (
    Choreographer,
    GateLane,
    TruckAtGate,
    gate_location,
    with_stop_at_the_gate,
)
from server.demo.processes import Child
from server.demo.scenario import DemoTruck, Scenario

log = logging.getLogger("bondwatch.demo")
DEMO_CONFIG = PROJECT_ROOT / "config" / "demo"


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
        broker = {"host": broker_host, "port": broker_port, "protocol": protocol}
        database = f"sqlite:///{self.run_dir / 'bondwatch.db'}"
        self.credentials = create_demo_accounts(database)
        server_cfg = self.run_dir / "server.yaml"
        server_cfg.write_text(
            yaml.safe_dump(
                {
                    "broker": {**broker, "client_id": "bondwatch-server-1"},
                    "http": {"host": "127.0.0.1", "port": self.http_port},
                    "storage": {"url": database},
                    "geography": {
                        "routes": sorted(
                            str(p) for p in (DEMO_CONFIG / "routes").glob("*.geojson")
                        ),
                        "zones": [str(DEMO_CONFIG / "zones.geojson")],
                    },
                    "signing_key_file": str(keys / "server.pem"),
                    "trips": {"start_on_first_fix": True},  # no departure gate controller here
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
            self.gate = GateLane(gate, self.run_dir, broker, keys / "server.pub")
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
            )
            self.choreographer.start()
        start_time = time.time()
        for truck in self.scenario.trucks:
            self._declare(base, truck)
            stops = truck.stops
            if gate is not None and truck.declaration.get("destination_gate") == gate.node_id:
                stops = with_stop_at_the_gate(
                    stops, DEMO_CONFIG / truck.playback, gate.dwell_s * self.scenario.time_scale
                )
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
        status, body = _post(f"{base}/api/v1/declarations", declaration, token)
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
        status, body = _post(f"{base}/api/v1/declarations/{declaration_id}/release", record, token)
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
                "--lock-id",
                lock_id,
                "--phone",
                phone,
                "--secret",
                secrets.token_hex(16),
                "--interval",
                "10",
                "--sealed-for",
                str(truck.declaration["declaration_id"]),
                "--time-scale",
                str(self.scenario.time_scale),
                "--start-time",
                time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(clock[0])),
                "--start-wall",
                repr(clock[1]),
            ],
            logs,
        )
        self._spawn(stub, ready="READY")
        port = next(line for line in stub.lines if line.startswith("/"))
        return {"type": "jt808", "port": port, "lock_ids": [lock_id], "phones": {lock_id: phone}}

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

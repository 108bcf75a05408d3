"""HIL fixtures: every part as its own process, on virtual serial ports, with a real broker."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from contract.signing import generate_private_key, private_key_to_pem, public_key_to_pem
from demo.accounts import create_demo_accounts
from devtools.broker import MosquittoBroker, free_port
from devtools.processes import Child

PROJECT = Path(__file__).resolve().parents[2]
DEMO = PROJECT / "config" / "demo"


class Bench:
    """A test bench: broker, server and the devices and agents a test starts."""

    def __init__(self, root: Path, broker: MosquittoBroker) -> None:
        self.root = root
        self.logs = root / "logs"
        self.broker = broker
        self.children: list[Child] = []
        self.http_port = free_port()
        self.base = f"http://127.0.0.1:{self.http_port}"
        self.db = root / "server.db"
        self.token = ""
        key = generate_private_key()
        self.private_key = root / "server.pem"
        self.public_key = root / "server.pub"
        self.private_key.write_bytes(private_key_to_pem(key))
        self.public_key.write_bytes(public_key_to_pem(key.public_key()))

    def broker_settings(self) -> dict[str, Any]:
        return {"host": self.broker.host, "port": self.broker.port}

    def start_server(self) -> None:
        self.token = create_demo_accounts(f"sqlite:///{self.db}").integration_token
        config = self.root / "server.yaml"
        config.write_text(
            yaml.safe_dump(
                {
                    "broker": {**self.broker_settings(), "client_id": f"srv-{self.http_port}"},
                    "http": {"host": "127.0.0.1", "port": self.http_port},
                    "storage": {"url": f"sqlite:///{self.db}"},
                    "signing_key_file": str(self.private_key),
                    "trips": {"start_on_first_fix": True},  # no departure gate controller here
                    "geography": {
                        "routes": [str(p) for p in sorted((DEMO / "routes").glob("*.geojson"))],
                        "zones": [str(DEMO / "zones.geojson")],
                    },
                }
            )
        )
        self.spawn("server", ["-m", "server", "--config", str(config)], ready="bondwatch-server")
        self.wait_for(lambda: httpx.get(f"{self.base}/healthz").json()["broker_connected"], 20)

    def spawn(self, name: str, args: list[str], ready: str | None = None) -> Child:
        child = Child.python(name, args, self.logs)
        self.children.append(child)
        return child.start(ready=ready)

    def start_truck(self, node_id: str, gnss_port: str, **reporting: float) -> Path:
        state = self.root / "state" / node_id
        state.mkdir(parents=True, exist_ok=True)
        config = self.root / f"{node_id}.yaml"
        config.write_text(
            yaml.safe_dump(
                {
                    "node_id": node_id,
                    "broker": self.broker_settings(),
                    "outbox": {
                        "path": str(state / "outbox.sqlite3"),
                        "nonce_path": str(state / "nonces.sqlite3"),
                    },
                    "server_public_key": str(self.public_key),
                    "gnss": {"type": "nmea", "port": gnss_port},
                    "reporting": reporting or {"interval_s": 10},
                }
            )
        )
        self.spawn(f"truck-{node_id}", ["-m", "edge", "truck", "--config", str(config)])
        return state

    def api(self, method: str, path: str, **kw: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token}"}
        return httpx.request(method, f"{self.base}/api/v1{path}", timeout=10, headers=headers, **kw)

    def stored_seqs(self, node_id: str) -> list[int]:
        with sqlite3.connect(self.db) as conn:
            rows = conn.execute(
                "SELECT seq FROM edge_messages WHERE node_id = ? ORDER BY seq", (node_id,)
            ).fetchall()
        return [r[0] for r in rows]

    @staticmethod
    def wait_for(check: Any, timeout: float, interval: float = 0.2) -> None:
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            try:
                if check():
                    return
            except Exception as err:  # keep polling while parts start
                last = err
            time.sleep(interval)
        raise AssertionError(f"condition not met within {timeout}s (last error: {last})")

    def stop(self) -> None:
        for child in reversed(self.children):
            child.stop()


@pytest.fixture
def bench(tmp_path: Path, broker: MosquittoBroker) -> Iterator[Bench]:
    running = Bench(tmp_path, broker)
    try:
        yield running
    finally:
        running.stop()

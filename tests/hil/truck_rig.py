"""One truck on the HIL bench: GNSS and e-lock (stubs or real), the agent, and probes.

Used by the fault scenarios (`test_truck_faults.py`). Everything runs as its own
process: the firmware stubs on ptys, `bondwatch-edge truck`, the server; the probes
read what a customs engineer would read — the agent's outbox file, the server's
store, the command topic.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.publish as mqtt_publish
import yaml

from contract import topics
from contract.ids import utc_now
from contract.payloads import TruckCommand
from contract.signing import load_private_key, new_command_id, new_nonce, sign
from devices.elock.authorisation import TokenAction, make_token
from devices.elock.driver import ElockDriver, Jt808LockConfig
from devtools.broker import MosquittoBroker, free_port
from devtools.processes import Child
from edge.outbox import Outbox, OutboxItem
from server.gates.lock_tokens import TokenCounter
from tests.hil.conftest import DEMO, Bench
from tests.hil.hardware import Hardware, hardware

ROUTE_FILE = DEMO / "routes" / "R-HP-BY.geojson"
LOCK_PHONE = "13800000001"
LOCK_SECRET = b"hil-lock-secret-0001"


def route_end() -> tuple[float, float]:
    """(lat, lon) of the demo route's last point: the destination site."""
    features = json.loads(ROUTE_FILE.read_text())["features"]
    line = next(f for f in features if f["properties"]["kind"] == "route")
    lon, lat = line["geometry"]["coordinates"][-1]
    return float(lat), float(lon)


def control(port: int, line: str, timeout: float = 5.0) -> str:
    """Send one control line to a stub's TCP control port; return its answer line."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(line.encode() + b"\n")
        answer = b""
        while not answer.endswith(b"\n"):
            chunk = sock.recv(4096)
            if not chunk:
                break
            answer += chunk
    return answer.decode().strip()


@dataclass
class Stored:
    """One row of the server's `edge_messages` (the legal record)."""

    seq: int
    channel: str
    ts: str
    received_at: str
    payload: dict[str, Any]


class TruckRig:
    """A truck gateway with its devices, on a bench (real broker, server subprocess)."""

    def __init__(self, bench: Bench, node_id: str, real: Hardware | None = None) -> None:
        self.bench = bench
        self.node_id = node_id
        self.real = real
        self.state = bench.root / "state" / node_id
        self.state.mkdir(parents=True, exist_ok=True)
        self.outbox_path = self.state / "outbox.sqlite3"
        self.gnss: Child | None = None
        self.gnss_port = real.gnss_port if real else ""
        self.gnss_control = 0
        self.lock: Child | None = None
        self.lock_port = (real.lock_port or "") if real else ""
        self.lock_control = 0
        self.lock_id = (real.lock_id or "") if real else "EL-1"
        self.lock_phone = (real.lock_phone or "") if real else LOCK_PHONE
        self.lock_secret = (real.lock_secret or b"") if real else LOCK_SECRET
        self.agent: Child | None = None
        #: Fixes per wall second: the stub's rate × time scale (a real receiver: 1).
        self.fixes_per_s = 1.0
        self.agent_starts = 0
        self.config_path = bench.root / f"{node_id}.yaml"
        self._counters = TokenCounter()

    # ---- devices ------------------------------------------------------------------------

    def start_gnss(
        self, rate: float, time_scale: float, *, link: bool = False, start: datetime | None = None
    ) -> None:
        """The GNSS stub on a pty (or nothing: the real receiver is already there)."""
        if self.real is not None:
            return
        self.fixes_per_s = rate * time_scale
        self.gnss_control = free_port()
        start = start or utc_now() - timedelta(hours=3)
        args = [
            "-m",
            "firmware_stubs.gnss",
            "--route",
            str(ROUTE_FILE),
            "--speed-kmh",
            "60",
            "--noise-m",
            "3",
            "--rate",
            str(rate),
            "--time-scale",
            str(time_scale),
            "--seed",
            "11",
            "--start-time",
            start.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "--control-port",
            str(self.gnss_control),
        ]
        if link:
            args += ["--link", str(self.bench.root / "gnss-link")]
        self.gnss = self.bench.spawn("gnss", args, ready="READY")
        lines = self.gnss.lines
        if link:
            self.gnss_port = next(line[5:] for line in lines if line.startswith("LINK "))
        else:
            self.gnss_port = next(line for line in lines if line.startswith("/"))

    def start_lock(self, *, interval_s: float = 2.0, area_radius_m: int = 500) -> None:
        """The e-lock stub, standing inside its allowed area at the destination site."""
        if self.real is not None:
            return
        lat, lon = route_end()
        self.lock_control = free_port()
        self.lock = self.bench.spawn(
            "elock",
            [
                "-m",
                "firmware_stubs.elock",
                "--lock-id",
                self.lock_id,
                "--phone",
                self.lock_phone,
                "--secret",
                self.lock_secret.decode(),
                "--control-port",
                str(self.lock_control),
                "--interval",
                str(interval_s),
                "--lat",
                str(lat),
                "--lon",
                str(lon),
                "--area",
                f"{lat},{lon},{area_radius_m}",
            ],
            ready="READY",
        )
        self.lock_port = next(line for line in self.lock.lines if line.startswith("/"))

    def lock_config(self) -> dict[str, Any]:
        config: dict[str, Any] = {
            "type": "jt808",
            "port": self.lock_port,
            "lock_ids": [self.lock_id],
            "ack_timeout_s": 1.0,
        }
        if self.lock_phone:
            config["phones"] = {self.lock_id: self.lock_phone}
        if self.real is not None:
            config["baudrate"] = self.real.lock_baud
        return config

    def seal(self, trip_id: str) -> str:
        """Seal the lock for `trip_id` as the departure gate's handheld would, before the
        agent owns the port. Returns the lock's answer (`done`)."""

        async def run() -> str:
            driver = ElockDriver(Jt808LockConfig.model_validate(self.lock_config()))

            async def ignore(*_: Any) -> None:
                return None

            task = asyncio.create_task(driver.run(ignore, ignore))
            try:
                reply = await driver.seal(self.lock_id, trip_id, self.token("seal", trip_id))
            finally:
                # Python 3.11's wait_for (inside the driver's read) can swallow a
                # cancellation that races with arriving data: cancel until it ends.
                while not task.done():
                    task.cancel()
                    await asyncio.wait({task}, timeout=0.5)
            return f"{reply.result} {reply.state}"

        return asyncio.run(run())

    def token(self, action: TokenAction, trip_id: str, minutes: float = 5) -> bytes:
        """A fresh single-use lock token, as the server makes them (its clock's counter)."""
        expires = utc_now() + timedelta(minutes=minutes)
        counter = self._counters.next()
        return make_token(self.lock_secret, self.lock_id, action, trip_id, counter, expires)

    def lock_state(self) -> dict[str, Any]:
        """The stub lock's own state (its control channel)."""
        answer = control(self.lock_control, "status")
        assert answer.startswith("OK "), answer
        state: dict[str, Any] = json.loads(answer[3:])
        return state

    # ---- the agent ----------------------------------------------------------------------

    def write_config(
        self,
        *,
        with_lock: bool = False,
        reporting: dict[str, float] | None = None,
        outbox: dict[str, Any] | None = None,
    ) -> None:
        """The agent's YAML; `outbox` adds to its `outbox:` block (e.g. `ack_timeout_s`)."""
        gnss: dict[str, Any] = {
            "type": "nmea",
            "port": self.gnss_port,
            "reconnect_min_s": 0.2,
            "reconnect_max_s": 1.0,
        }
        if self.real is not None:
            gnss["baudrate"] = self.real.gnss_baud
        config: dict[str, Any] = {
            "node_id": self.node_id,
            "broker": {
                **self.bench.broker_settings(),
                "reconnect_min_s": 0.2,
                "reconnect_max_s": 1.0,
            },
            "outbox": {
                "path": str(self.outbox_path),
                "nonce_path": str(self.state / "nonces.sqlite3"),
                **(outbox or {}),
            },
            "server_public_key": str(self.bench.public_key),
            "gnss": gnss,
            # Every fix becomes a position: the strictest test of "nothing lost".
            "reporting": reporting or {"interval_s": 0.001, "min_interval_s": 0},
        }
        if with_lock:
            config["lock"] = self.lock_config()
        self.config_path.write_text(yaml.safe_dump(config))

    def start_agent(self) -> Child:
        self.agent_starts += 1
        self.agent = self.bench.spawn(
            f"truck-{self.node_id}", ["-m", "edge", "truck", "--config", str(self.config_path)]
        )
        return self.agent

    def kill_agent(self) -> None:
        """SIGKILL: a power cut of the gateway."""
        assert self.agent is not None
        self.agent.kill()

    @contextlib.contextmanager
    def outbox(self) -> Iterator[Outbox]:
        box = Outbox(self.outbox_path, self.node_id, max_bytes=1 << 30)
        try:
            yield box
        finally:
            box.close()

    def pending(self) -> list[OutboxItem]:
        """Every message the outbox holds now that the broker has not taken (no PUBACK)."""
        with self.outbox() as box:
            return box.pending(1_000_000, unsent_only=True)

    # ---- the server's record ------------------------------------------------------------

    def stored(self, channel: str | None = None) -> list[Stored]:
        query = "SELECT seq, channel, ts, received_at, payload FROM edge_messages WHERE node_id = ?"
        params: tuple[str, ...] = (self.node_id,)
        if channel is not None:
            query += " AND channel = ?"
            params += (channel,)
        with contextlib.closing(sqlite3.connect(self.bench.db)) as conn:
            rows = conn.execute(query + " ORDER BY seq", params).fetchall()
        return [Stored(r[0], r[1], str(r[2]), str(r[3]), json.loads(r[4])) for r in rows]

    def replayed_flags(self) -> dict[int, bool]:
        """seq → the `replayed` flag of every stored position."""
        with contextlib.closing(sqlite3.connect(self.bench.db)) as conn:
            rows = conn.execute(
                "SELECT seq, replayed FROM positions WHERE node_id = ?", (self.node_id,)
            ).fetchall()
        return {int(seq): bool(flag) for seq, flag in rows}

    def stop_devices(self) -> None:
        """Stop the stubs (the receiver goes quiet); real devices keep talking."""
        for child in (self.gnss, self.lock):
            if child is not None:
                child.stop()

    def wait_drained(self, timeout: float) -> tuple[int, dict[int, str]]:
        """Wait until the outbox is empty and the server holds every seq it sent.

        Returns (last seq handed out, reserved seqs and their purpose)."""
        result: tuple[int, dict[int, str]] = (0, {})

        def drained() -> bool:
            nonlocal result
            with self.outbox() as box:
                stats, reserved = box.stats(), box.reservations()
            result = (stats.last_seq, reserved)
            stored = set(self.bench.stored_seqs(self.node_id))
            unsent = set(range(1, stats.last_seq + 1)) - stored - set(reserved)
            return stats.count == 0 and not unsent

        self.bench.wait_for(drained, timeout, interval=0.5)
        return result

    # ---- commands -----------------------------------------------------------------------

    def command(self, action: str, trip_id: str, **fields: Any) -> TruckCommand:
        now = utc_now()
        values: dict[str, Any] = {
            "node_id": self.node_id,
            "command_id": new_command_id(),
            "issued_at": now,
            "expires_at": now + timedelta(minutes=2),
            "nonce": new_nonce(),
            "action": action,
            "lock_id": self.lock_id,
            "trip_id": trip_id,
        }
        values.update(fields)
        return TruckCommand(**values)

    def signed(self, command: TruckCommand, key_file: Path | None = None) -> bytes:
        key = load_private_key(key_file or self.bench.private_key)
        return sign(command, key).to_json()

    def send(self, raw: bytes) -> None:
        """Publish raw bytes on the truck's command topic, as the server (or an attacker)."""
        mqtt_publish.single(
            topics.command("truck", self.node_id),
            raw,
            qos=1,
            hostname=self.bench.broker.host,
            port=self.bench.broker.port,
            client_id=f"hil-sender-{free_port()}",
        )

    def result_of(self, command_id: str, timeout: float = 20.0) -> dict[str, Any]:
        """The `command/result` the server stored for `command_id`."""
        found: dict[str, Any] = {}

        def arrived() -> bool:
            for row in self.stored("command/result"):
                if row.payload.get("command_id") == command_id:
                    found.update(row.payload)
                    return True
            return False

        self.bench.wait_for(arrived, timeout)
        return found

    def wait_online(self, timeout: float = 30.0) -> None:
        """Wait until the agent's first messages reach the server."""
        self.bench.wait_for(lambda: len(self.bench.stored_seqs(self.node_id)) > 0, timeout)


@contextlib.contextmanager
def truck_on_own_bench(root: Path, broker: MosquittoBroker, node_id: str) -> Iterator[TruckRig]:
    """A bench on a broker of the test's own (`own_broker`: the test may stop or kill it),
    the server started, and one truck (the real devices when `BONDWATCH_HIL_ENV` names
    them)."""
    bench = Bench(root, broker)
    try:
        bench.start_server()
        yield TruckRig(bench, node_id, hardware())
    finally:
        bench.stop()


def assert_nothing_lost(rig: TruckRig, last_seq: int, reserved: dict[int, str]) -> list[int]:
    """Every seq the agent handed out reached the store once, except unsent reservations."""
    stored = rig.bench.stored_seqs(rig.node_id)
    assert len(stored) == len(set(stored))
    assert stored[-1] <= last_seq
    missing = set(range(1, last_seq + 1)) - set(stored)
    lost = sorted(missing - set(reserved))
    assert not lost, f"lost sequence numbers: {lost[:20]} (of {len(lost)})"
    # Only availability messages are published outside the outbox.
    assert all(reserved[s].startswith(("will", "availability")) for s in missing)
    return stored

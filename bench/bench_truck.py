"""Benchmark: memory and CPU of the truck agent reading a GNSS receiver at 1 Hz and 10 Hz.

Metrics `edge.truck_rss_mb_1hz`, `edge.truck_cpu_pct_1hz` (targets 40 MB and 1 % of
one core) and `edge.truck_rss_mb_10hz`, `edge.truck_cpu_pct_10hz` (no targets).

Each rate gets its own `bondwatch-edge truck` process reading its own GNSS stub
(`python -m firmware_stubs.gnss`, real time) on a pty and publishing to a real
Mosquitto (production settings). The reporting policy turns *every* fix into a
position message — the worst case of the outbox path (one committed SQLite
transaction and one QoS 1 publish per fix). After a warm-up, CPU is the agent's
utime + stime (`/proc/<pid>/stat`) over the interval divided by the wall time;
memory is the peak `VmRSS` (`/proc/<pid>/status`) sampled every second. The two
agents run side by side; each is measured on its own process only.

The agents run as `config/systemd/bondwatch-edge-truck.service` runs them: with its
`Environment=` lines (bytecode cache moved into the run's folder) and from their second
start, the first (a warm-up agent, stopped after its first message) having written the
bytecode cache, as on a gateway after its first start.

Run alone: `PYTHONPATH=. python bench/bench_truck.py` (`BONDWATCH_BENCH_TRUCK_S` sets
the measured interval, default 30 s).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parents[1]
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

from contract.signing import generate_private_key, public_key_to_pem  # noqa: E402
from devtools.broker import MosquittoBroker  # noqa: E402
from devtools.processes import Child  # noqa: E402
from edge.outbox import Outbox  # noqa: E402

ROUTE = PROJECT_ROOT / "config" / "demo" / "routes" / "R-HP-BY.geojson"
UNIT = PROJECT_ROOT / "config" / "systemd" / "bondwatch-edge-truck.service"
WARM_UP_S = 5.0
RATES = (1, 10)
TARGETS: dict[int, dict[str, float | None]] = {
    1: {"rss": 40.0, "cpu": 1.0},
    10: {"rss": None, "cpu": None},
}
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of `pid`, seconds (fields 14 and 15 of /proc/<pid>/stat)."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2 :].split()  # after "(comm) "; field 3 is fields[0]
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def rss_mb(pid: int) -> float:
    """Resident set size of `pid` in MiB (`VmRSS` of /proc/<pid>/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    raise RuntimeError(f"no VmRSS for process {pid}")


def unit_environment(pycache: Path) -> dict[str, str]:
    """The `Environment=` of the agent's systemd unit, its bytecode cache in `pycache`.

    Nor does a unit set PYTHONDONTWRITEBYTECODE, which would keep the cache unwritten."""
    env = {"PYTHONDONTWRITEBYTECODE": ""}  # empty is unset
    for line in UNIT.read_text().splitlines():
        if line.startswith("Environment="):
            key, _, value = line.removeprefix("Environment=").partition("=")
            env[key] = str(pycache) if key == "PYTHONPYCACHEPREFIX" else value
    return env


@dataclass
class Agent:
    rate: int
    node_id: str
    child: Child
    stub: Child
    outbox: Path

    @property
    def pid(self) -> int:
        assert self.child.proc is not None
        return self.child.proc.pid

    def last_seq(self) -> int:
        box = Outbox(self.outbox, self.node_id, max_bytes=1 << 30)
        try:
            return box.last_seq()
        finally:
            box.close()


def start_agent(
    root: Path,
    broker: MosquittoBroker,
    rate: int,
    public_key: Path,
    env: dict[str, str],
    name: str = "",
) -> Agent:
    logs = root / "logs"
    stub = Child.python(
        f"gnss-{rate}hz{name}",
        [
            "-m",
            "firmware_stubs.gnss",
            "--route",
            str(ROUTE),
            "--rate",
            str(rate),
            "--loop",
            "--seed",
            str(rate),
        ],
        logs,
    ).start(ready="READY")
    port = next(line for line in stub.lines if line.startswith("/"))
    node_id = f"BENCH-TRUCK-{rate}HZ{name.upper()}"
    state = root / node_id
    state.mkdir()
    config = {
        "node_id": node_id,
        "broker": {"host": broker.host, "port": broker.port},
        "outbox": {
            "path": str(state / "outbox.sqlite3"),
            "nonce_path": str(state / "nonces.sqlite3"),
        },
        "server_public_key": str(public_key),
        "gnss": {"type": "nmea", "port": port},
        "reporting": {"interval_s": 0.001, "min_interval_s": 0},
    }
    config_path = root / f"{node_id}.json"  # JSON is YAML
    config_path.write_text(json.dumps(config))
    child = Child.python(
        f"truck-{rate}hz{name}",
        ["-m", "edge", "truck", "--config", str(config_path)],
        logs,
        env=env,
    ).start()
    return Agent(rate, node_id, child, stub, state / "outbox.sqlite3")


def warm_up(root: Path, broker: MosquittoBroker, public_key: Path, env: dict[str, str]) -> None:
    """Start an agent until its first message is stored, then stop it."""
    agent = start_agent(root, broker, 1, public_key, env, name="-warm-up")
    try:
        deadline = time.monotonic() + 30.0
        time.sleep(1.0)  # the agent creates its outbox; the bench only reads it
        while not agent.outbox.exists() or agent.last_seq() < 1:
            if time.monotonic() > deadline:
                raise RuntimeError(f"warm-up agent stored nothing; see {agent.child.log_path}")
            time.sleep(0.2)
    finally:
        agent.child.stop()
        agent.stub.stop()


def measure(agents: list[Agent], seconds: float) -> dict[int, dict[str, float]]:
    time.sleep(WARM_UP_S)
    start_wall = time.monotonic()
    start_cpu = {a.rate: cpu_seconds(a.pid) for a in agents}
    start_seq = {a.rate: a.last_seq() for a in agents}
    peak = {a.rate: rss_mb(a.pid) for a in agents}
    while time.monotonic() - start_wall < seconds:
        time.sleep(1.0)
        for a in agents:
            peak[a.rate] = max(peak[a.rate], rss_mb(a.pid))
    wall = time.monotonic() - start_wall
    out: dict[int, dict[str, float]] = {}
    for a in agents:
        used = cpu_seconds(a.pid) - start_cpu[a.rate]
        messages = a.last_seq() - start_seq[a.rate]
        if messages < a.rate * wall * 0.8:
            raise RuntimeError(
                f"agent at {a.rate} Hz sent only {messages} messages in {wall:.0f} s; "
                f"see {a.child.log_path}"
            )
        out[a.rate] = {"cpu": 100.0 * used / wall, "rss": peak[a.rate], "msgs": messages / wall}
    return out


def run() -> dict[str, dict[str, Any]]:
    seconds = float(os.environ.get("BONDWATCH_BENCH_TRUCK_S", "30"))
    with tempfile.TemporaryDirectory(prefix="bench-truck-") as tmp:
        root = Path(tmp)
        key = generate_private_key()
        public_key = root / "server.pub"
        public_key.write_bytes(public_key_to_pem(key.public_key()))
        agents: list[Agent] = []
        with MosquittoBroker(root / "mosquitto") as broker:
            env = unit_environment(root / "pycache")
            try:
                warm_up(root, broker, public_key, env)
                agents = [start_agent(root, broker, rate, public_key, env) for rate in RATES]
                figures = measure(agents, seconds)
            finally:
                for a in agents:
                    a.child.stop()
                    a.stub.stop()
    results: dict[str, dict[str, Any]] = {}
    for rate, fig in figures.items():
        results[f"edge.truck_rss_mb_{rate}hz"] = {
            "value": round(fig["rss"], 1),
            "unit": "MB",
            "target": TARGETS[rate]["rss"],
            "better": "lower",
        }
        results[f"edge.truck_cpu_pct_{rate}hz"] = {
            "value": round(fig["cpu"], 2),
            "unit": "%",
            "target": TARGETS[rate]["cpu"],
            "better": "lower",
        }
    return results


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))

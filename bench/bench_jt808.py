"""Benchmark: `bondwatch-jt808` holding 10,000 cellular devices reporting every 10 s.

Metrics `jt808.connections` (devices connected and authenticated at once, target
10,000), `jt808.reports_per_s` (reports answered per second, each only after the commit
that stores it; target 1,000 = 10,000 devices every 10 s), `jt808.report_latency_ms_p99`
(report sent → 0x8001 received), `jt808.kb_per_connection` (the gateway's resident memory
with the devices connected, minus its memory before, per connection) and
`jt808.cpu_pct` (the gateway's CPU over the measured window, % of one core).

Everything on loopback: a real Mosquitto (production settings, no access list), one
gateway process (`python -m edge.jt808`) publishing every report (a `position`) with
QoS 1, and the load generator (`bench/jt808_load.py`) in a process of its own. No server
acknowledges, so the store grows for the bounded duration. Both processes raise their
open-file limit to the hard limit (10,000 sockets each).

Run alone: `PYTHONPATH=. python bench/bench_jt808.py` (`BONDWATCH_BENCH_JT808_DEVICES`,
default 10000; `BONDWATCH_BENCH_JT808_S`, the measured window, default 30 s).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parents[1]
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

import yaml  # noqa: E402

from bench.jt808_load import registry_yaml  # noqa: E402
from contract.signing import generate_private_key, public_key_to_pem  # noqa: E402
from devtools.broker import MosquittoBroker, free_port  # noqa: E402
from devtools.processes import Child  # noqa: E402

INTERVAL_S = 10.0
PHONE_BASE = 14000000000
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def run() -> dict[str, dict[str, Any]]:
    devices = int(os.environ.get("BONDWATCH_BENCH_JT808_DEVICES", "10000"))
    window = float(os.environ.get("BONDWATCH_BENCH_JT808_S", "30"))
    with tempfile.TemporaryDirectory(prefix="bench-jt808-") as tmp:
        root = Path(tmp)
        broker = MosquittoBroker(root / "mosquitto")
        broker.start()
        gateway: Child | None = None
        try:
            registry_yaml(root / "registry.yaml", devices, PHONE_BASE)
            (root / "auth.secret").write_text("bench-jt808-secret-0123456789\n")
            (root / "server.pub").write_bytes(
                public_key_to_pem(generate_private_key().public_key())
            )
            port = free_port()
            (root / "jt808.yaml").write_text(
                yaml.safe_dump(
                    {
                        "gateway_id": "jt808-bench",
                        "broker": {"host": broker.host, "port": broker.port},
                        "store": {
                            "path": str(root / "store.sqlite3"),
                            "nonce_path": str(root / "nonces.sqlite3"),
                            "max_bytes": 4 * 1024**3,
                        },
                        "server_public_key": str(root / "server.pub"),
                        "registry": str(root / "registry.yaml"),
                        "auth_secret_file": str(root / "auth.secret"),
                        "listen": {"host": "127.0.0.1", "port": port},
                        "limits": {"max_connections": devices + 100},
                    }
                )
            )
            gateway = Child.python(
                "jt808",
                [
                    "-m",
                    "edge.jt808",
                    "--config",
                    str(root / "jt808.yaml"),
                    "--log-level",
                    "WARNING",
                ],
                root / "logs",
            ).start(ready="READY", timeout=120)
            pid = gateway.proc.pid  # type: ignore[union-attr]
            time.sleep(2.0)
            idle_kb = rss_kb(pid)
            cpu_before = cpu_seconds(pid)
            started = time.monotonic()
            load = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "bench.jt808_load",
                    "--gateway",
                    f"127.0.0.1:{port}",
                    "--devices",
                    str(devices),
                    "--phone-base",
                    str(PHONE_BASE),
                    "--interval",
                    str(INTERVAL_S),
                    "--duration",
                    str(window),
                ],
                cwd=PROJECT_ROOT,
                capture_output=True,
                text=True,
                timeout=window + 300,
                check=True,
            )
            elapsed = time.monotonic() - started
            loaded_kb = rss_kb(pid)
            cpu = cpu_seconds(pid) - cpu_before
            result = json.loads(load.stdout.strip().splitlines()[-1])
        finally:
            if gateway is not None:
                gateway.stop()
            broker.stop()
    online = int(result["online"])
    print(f"jt808 bench: {json.dumps(result)}; gateway RSS {idle_kb} → {loaded_kb} kB")
    return {
        "jt808.connections": {
            "value": online,
            "unit": "devices",
            "target": 10000,
            "better": "higher",
        },
        "jt808.reports_per_s": {
            "value": result["answered_per_s"],
            "unit": "1/s",
            "target": 1000,
            "better": "higher",
        },
        "jt808.report_latency_ms_p99": {
            "value": result["latency_ms_p99"],
            "unit": "ms",
            "target": None,
            "better": "lower",
        },
        "jt808.kb_per_connection": {
            "value": round((loaded_kb - idle_kb) / max(online, 1), 1),
            "unit": "kB",
            "target": None,
            "better": "lower",
        },
        "jt808.cpu_pct": {
            "value": round(100 * cpu / elapsed, 1),
            "unit": "%",
            "target": None,
            "better": "lower",
        },
    }


if __name__ == "__main__":
    for name, metric in run().items():
        print(f"{name}: {metric['value']} {metric['unit']}")

"""Benchmark: drain a 24-hour 1 Hz backlog (86,400 positions) from the outbox.

Metric `edge.outbox_drain_s_86400`: 86,400 realistic position payloads are
enqueued while the node is offline; then the MQTT link connects to a real
Mosquitto (production settings, `server.demo.broker.MosquittoBroker`) and the time
until a subscriber in another process has received every one of them is measured.
The subscriber checks that no seq is missing.

Run alone: `PYTHONPATH=. python bench/bench_outbox.py`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parents[1]
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

from contract import topics  # noqa: E402
from contract.broker import BrokerSettings  # noqa: E402
from contract.ids import format_ts  # noqa: E402
from edge.link import MqttLink  # noqa: E402
from edge.outbox import Outbox  # noqa: E402
from server.demo.broker import MosquittoBroker  # noqa: E402

METRIC = "edge.outbox_drain_s_86400"
COUNT = 86_400
NODE = "BENCH-T1"
SUBSCRIBER_ID = "bench-outbox-subscriber"


def position(i: int, start: datetime) -> dict[str, Any]:
    """One realistic 1 Hz fix along a road, as the truck agent publishes it."""
    return {
        "ts": format_ts(start + timedelta(seconds=i)),
        "lat": round(22.5431 + i * 1.2e-5, 7),
        "lon": round(113.9005 + i * 0.9e-5, 7),
        "alt_m": 12.4,
        "speed_kmh": 54.7,
        "course_deg": 36.2,
        "fix": "3d",
        "sats": 17,
        "hdop": 0.8,
        "systems": ["GPS", "BDS"],
    }


async def _subscribe(port: int, first: int, last: int) -> int:
    """Child process: count every position seq in [first, last]; print READY/DONE."""
    import aiomqtt
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = 3600
    expected = last - first + 1
    seen: set[int] = set()
    async with aiomqtt.Client(
        "127.0.0.1",
        port,
        identifier=SUBSCRIBER_ID,
        protocol=aiomqtt.ProtocolVersion.V5,
        clean_start=False,
        properties=props,
        max_queued_incoming_messages=0,
    ) as client:
        await client.subscribe(topics.position(NODE), qos=1)
        print("READY", flush=True)
        async for message in client.messages:
            payload = message.payload
            assert isinstance(payload, bytes)
            seq = json.loads(payload)["seq"]
            if first <= seq <= last:
                seen.add(seq)
            if len(seen) == expected:
                break
    print(f"DONE {time.monotonic():.6f} {len(seen)}", flush=True)
    return 0


async def _drain(workdir: Path) -> dict[str, Any]:
    broker = MosquittoBroker(workdir / "mosquitto")
    broker.start()
    try:
        outbox = Outbox(workdir / "outbox.db", NODE, 500_000_000)
        start = datetime.now(UTC) - timedelta(days=1)
        topic = topics.position(NODE)
        seqs: list[int] = []
        for chunk in range(0, COUNT, 3600):
            batch = [(topic, position(i, start), False) for i in range(chunk, chunk + 3600)]
            seqs += outbox.enqueue_many(batch)
        backlog_bytes = outbox.stats().bytes

        env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
        sub = await asyncio.create_subprocess_exec(
            sys.executable,
            __file__,
            "--subscribe",
            str(broker.port),
            str(seqs[0]),
            str(seqs[-1]),
            env=env,
            stdout=asyncio.subprocess.PIPE,
        )
        assert sub.stdout is not None
        ready = await asyncio.wait_for(sub.stdout.readline(), 30)
        if ready.strip() != b"READY":
            raise RuntimeError(f"subscriber did not start: {ready!r}")

        async def no_command(raw: bytes) -> None:
            return None

        settings = BrokerSettings(host="127.0.0.1", port=broker.port)
        link = MqttLink(settings, "truck", NODE, outbox, no_command)
        began = time.monotonic()
        runner = asyncio.create_task(link.run())
        done = await asyncio.wait_for(sub.stdout.readline(), 600)
        await sub.wait()
        parts = done.split()
        if len(parts) != 3 or parts[0] != b"DONE":
            raise RuntimeError(f"subscriber failed: {done!r}")
        received = int(parts[2])
        elapsed = float(parts[1]) - began
        await link.stop()
        await runner
        if received != COUNT:
            raise AssertionError(f"{COUNT - received} positions missing after the drain")
        return {
            "elapsed": elapsed,
            "backlog_bytes": backlog_bytes,
            "replayed": link.replayed_total,
            "left": outbox.stats().count,
        }
    finally:
        broker.stop()


def run() -> dict[str, dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="bench-outbox-") as tmp:
        result = asyncio.run(_drain(Path(tmp)))
    return {
        METRIC: {
            "value": round(result["elapsed"], 2),
            "unit": "s",
            "target": 60.0,
            "better": "lower",
        },
        "edge.outbox_drain_per_s": {
            "value": round(COUNT / result["elapsed"], 1),
            "unit": "1/s",
            "target": None,
            "better": "higher",
        },
    }


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--subscribe":
        sys.exit(asyncio.run(_subscribe(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))))
    logging.basicConfig(level=logging.WARNING)
    print(json.dumps(run(), indent=2))

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
import shutil
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


class _CSubscriber:
    """Counts with `mosquitto_sub` (C, so the counting does not slow the drain)."""

    def __init__(self, port: int) -> None:
        self.base = ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(port), "-q", "1"]
        self.base += ["-c", "-i", SUBSCRIBER_ID, "-t", topics.position(NODE)]

    async def subscribe(self) -> None:
        # A persistent session that exists before the drain starts: nothing is missed.
        proc = await asyncio.create_subprocess_exec(*self.base, "-E")
        if await asyncio.wait_for(proc.wait(), 30) != 0:
            raise RuntimeError("mosquitto_sub could not subscribe")

    async def count(self, first: int, last: int) -> tuple[int, float]:
        proc = await asyncio.create_subprocess_exec(
            *self.base, "-C", str(last - first + 1), stdout=asyncio.subprocess.PIPE
        )
        out, _ = await asyncio.wait_for(proc.communicate(), 600)
        finished = time.monotonic()
        seen = {json.loads(line)["seq"] for line in out.splitlines() if line.strip()}
        return len(seen & set(range(first, last + 1))), finished


class _PySubscriber:
    """Counts in a Python child process (when mosquitto_sub is not installed)."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    @classmethod
    async def start(cls, port: int, first: int, last: int) -> _PySubscriber:
        env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            __file__,
            "--subscribe",
            str(port),
            str(first),
            str(last),
            env=env,
            stdout=asyncio.subprocess.PIPE,
        )
        assert proc.stdout is not None
        ready = await asyncio.wait_for(proc.stdout.readline(), 30)
        if ready.strip() != b"READY":
            raise RuntimeError(f"subscriber did not start: {ready!r}")
        return cls(proc)

    async def count(self) -> tuple[int, float]:
        assert self.proc.stdout is not None
        done = await asyncio.wait_for(self.proc.stdout.readline(), 600)
        await self.proc.wait()
        parts = done.split()
        if len(parts) != 3 or parts[0] != b"DONE":
            raise RuntimeError(f"subscriber failed: {done!r}")
        return int(parts[2]), float(parts[1])


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

        async def no_command(raw: bytes) -> None:
            return None

        settings = BrokerSettings(host="127.0.0.1", port=broker.port)
        link = MqttLink(settings, "truck", NODE, outbox, no_command)
        counter = _CSubscriber(broker.port) if shutil.which("mosquitto_sub") else None
        if counter is not None:
            await counter.subscribe()
            began = time.monotonic()
            runner = asyncio.create_task(link.run())
            seen, finished = await counter.count(seqs[0], seqs[-1])
        else:
            sub = await _PySubscriber.start(broker.port, seqs[0], seqs[-1])
            began = time.monotonic()
            runner = asyncio.create_task(link.run())
            seen, finished = await sub.count()
        elapsed = finished - began
        await link.stop()
        await runner
        if seen != COUNT:
            raise AssertionError(f"{COUNT - seen} positions missing after the drain")
        return {
            "elapsed": elapsed,
            "backlog_bytes": backlog_bytes,
            "replayed": link.replayed_total,
            "left": outbox.stats().count,
            "subscriber": "mosquitto_sub" if counter is not None else "aiomqtt",
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

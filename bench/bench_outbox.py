"""Benchmark: drain a 24-hour 1 Hz backlog (86,400 positions) from the outbox.

Metric `edge.outbox_drain_s_86400`: 86,400 realistic position payloads are
enqueued while the node is offline; then the MQTT link connects to a real
Mosquitto (production settings, `devtools.broker.MosquittoBroker`) and the time
until a subscriber in another process has received every one of them is measured.
The subscriber checks that no seq is missing.

With the server's acknowledgement (docs/edge-outbox.md#server-acknowledgement) a message
leaves the outbox only when the server has stored it, so two more measurements:

- `edge.outbox_drain_acked_s_86400`: the same backlog, drained to the server's real
  ingest (`server.ingest.Ingest` on SQLite, a process of its own: `bench.ingest_child`)
  until the outbox is EMPTY — every position stored and acknowledged. The server's
  store is then checked to hold all 86,400, each once.
- The acknowledgement's cost to the server: trucks reporting once a second each (so
  that every position draws an acknowledgement of its own, the worst and the usual
  case) publish live at `LOAD_RATES` positions a second — the first the machine
  sustains with acknowledgements on — for `LOAD_S` s, to the ingest alone in its
  process, with acknowledgements on and off in turn (`LOAD_ROUNDS` rounds each, the
  lowest CPU of each kept; when it sustains none, the lowest rate, with the rate it
  stored as `server.ack_load_stored_per_s`). `server.acks_per_s` is the
  acknowledgements it published a second; `server.ingest_cpu_pct_acks_on` / `_off`
  its CPU time (all threads, of one core) per second of load at that rate.

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

from bench.bench_server import _join, _publish  # noqa: E402
from contract import topics  # noqa: E402
from contract.broker import BrokerSettings  # noqa: E402
from contract.ids import format_ts, utc_now  # noqa: E402
from devtools.broker import MosquittoBroker  # noqa: E402
from edge.link import MqttLink  # noqa: E402
from edge.outbox import Outbox  # noqa: E402

METRIC = "edge.outbox_drain_s_86400"
ACKED_METRIC = "edge.outbox_drain_acked_s_86400"
COUNT = 86_400
NODE = "BENCH-T1"
SUBSCRIBER_ID = "bench-outbox-subscriber"
#: Live loads tried for the acknowledgement's cost, positions a second, highest first
#: (multiples of the load generator's 4 connections: each truck on one of them).
LOAD_RATES = (10_000, 8_000, 6_400, 5_120, 4_096)
LOAD_S = 10
LOAD_ROUNDS = 2
#: A load counts as sustained when the ingest stored it at this share of its rate.
SUSTAINED = 0.95
TIMEOUT_S = 600.0


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


def _backlog(path: Path) -> tuple[Outbox, list[int]]:
    """An outbox holding a day of 1 Hz positions, enqueued while the node was offline."""
    outbox = Outbox(path, NODE, 500_000_000)
    start = datetime.now(UTC) - timedelta(days=1)
    topic = topics.position(NODE)
    seqs: list[int] = []
    for chunk in range(0, COUNT, 3600):
        batch = [(topic, position(i, start), False) for i in range(chunk, chunk + 3600)]
        seqs += outbox.enqueue_many(batch)
    return outbox, seqs


async def no_command(raw: bytes) -> None:
    return None


async def _drain(workdir: Path) -> dict[str, Any]:
    broker = MosquittoBroker(workdir / "mosquitto")
    broker.start()
    try:
        outbox, seqs = _backlog(workdir / "outbox.db")
        backlog_bytes = outbox.stats().bytes
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


class _IngestChild:
    """The parent's handle on `bench.ingest_child`: the server's ingest in its process."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    @classmethod
    async def start(cls, port: int, db: Path, client_id: str, acks: bool) -> _IngestChild:
        env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.ingest_child",
            str(port),
            str(db),
            client_id,
            "on" if acks else "off",
            env=env,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        child = cls(proc)
        assert proc.stdout is not None
        ready = await asyncio.wait_for(proc.stdout.readline(), 60)
        if ready.strip() != b"READY":
            await child.stop()
            raise RuntimeError(f"the ingest process did not start: {ready!r}")
        return child

    async def mark(self) -> tuple[float, int, int]:
        """(CPU seconds so far, messages stored, acknowledgements published)."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(b"mark\n")
        await self.proc.stdin.drain()
        parts = (await asyncio.wait_for(self.proc.stdout.readline(), 30)).split()
        if len(parts) != 4 or parts[0] != b"MARK":
            raise RuntimeError(f"the ingest process answered {parts!r}")
        return float(parts[1]), int(parts[2]), int(parts[3])

    async def stop(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()  # its end: the child cancels its ingest and exits
        try:
            await asyncio.wait_for(self.proc.wait(), 20)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()


async def _drain_acked(workdir: Path) -> dict[str, Any]:
    """The day's backlog to the server's ingest: seconds until the outbox is empty."""
    with MosquittoBroker(workdir / "mosquitto-acked") as broker:
        outbox, seqs = _backlog(workdir / "outbox-acked.db")
        # Subscribed before the node connects, as a deployment's server is.
        server = await _IngestChild.start(
            broker.port, workdir / "server-acked.db", "bench-outbox-server", acks=True
        )
        try:
            settings = BrokerSettings(host="127.0.0.1", port=broker.port)
            link = MqttLink(settings, "truck", NODE, outbox, no_command)
            began = time.monotonic()
            runner = asyncio.create_task(link.run())
            async with asyncio.timeout(TIMEOUT_S):
                while outbox.stats().count:  # noqa: ASYNC110 - the outbox has no removal event
                    await asyncio.sleep(0.1)
            elapsed = time.monotonic() - began
            await link.stop()
            await runner
            _, stored, acks = await server.mark()
        finally:
            await server.stop()
        if stored != len(seqs):
            raise AssertionError(f"the server stored {stored} of {len(seqs)} positions")
        return {
            "elapsed": elapsed,
            "acks": acks,
            "resent": link.resent_total,
            "server_acked": link.server_acked_total,
        }


def _live(trucks: int, seconds: int, tag: str) -> list[tuple[str, bytes]]:
    """`seconds` of positions of `trucks` trucks reporting once a second each."""
    start = utc_now() - timedelta(seconds=seconds)
    out: list[tuple[str, bytes]] = []
    for s in range(seconds):
        fix = position(s, start)
        for v in range(trucks):
            node = f"BENCH-{tag}-{v:05d}"
            out.append(
                (topics.position(node), json.dumps({**fix, "node_id": node, "seq": s + 1}).encode())
            )
    return out


async def _one_load(
    broker: MosquittoBroker, workdir: Path, rate: int, acks: bool, tag: str
) -> dict[str, float]:
    """One live load through a fresh ingest process: CPU, stored rate and acks a second."""
    messages = _live(rate, LOAD_S, tag)
    server = await _IngestChild.start(
        broker.port, workdir / f"server-{tag}.db", f"bench-ack-{tag}", acks
    )
    try:
        cpu0, _, acks0 = await server.mark()
        load = _publish(broker, messages, tag, rate=float(rate))
        first: float | None = None
        async with asyncio.timeout(TIMEOUT_S):
            while True:
                cpu, stored, sent = await server.mark()
                now = time.monotonic()
                if first is None and stored:
                    first = now
                if stored >= len(messages):
                    break
                await asyncio.sleep(0.2)
        await asyncio.to_thread(_join, load)
    finally:
        await server.stop()
    assert first is not None
    window = max(now - first, 1e-3)
    return {
        "stored_per_s": len(messages) / window,
        # CPU seconds per second of load at `rate`: the share of one core it needs.
        "cpu_pct": (cpu - cpu0) * rate / len(messages) * 100,
        "acks_per_s": (sent - acks0) / window,
    }


async def _ack_cost(workdir: Path) -> dict[str, float]:
    """The acknowledgement's cost at the highest of `LOAD_RATES` the ingest sustains (or,
    when it sustains none on a busy machine, at the lowest, at the rate it did store)."""
    with MosquittoBroker(workdir / "mosquitto-load") as broker:
        for rate in LOAD_RATES:
            on: list[dict[str, float]] = []
            off: list[dict[str, float]] = []
            for r in range(LOAD_ROUNDS):
                on.append(await _one_load(broker, workdir, rate, True, f"on{rate}r{r}"))
                if on[-1]["stored_per_s"] < SUSTAINED * rate and rate != LOAD_RATES[-1]:
                    break
                off.append(await _one_load(broker, workdir, rate, False, f"off{rate}r{r}"))
            if len(off) == LOAD_ROUNDS:
                break
        return {
            "rate": rate,
            "stored_per_s": min(m["stored_per_s"] for m in on),
            "acks_per_s": min(m["acks_per_s"] for m in on),
            "cpu_on": min(m["cpu_pct"] for m in on),
            "cpu_off": min(m["cpu_pct"] for m in off),
        }


def run() -> dict[str, dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="bench-outbox-") as tmp:
        result = asyncio.run(_drain(Path(tmp)))
    with tempfile.TemporaryDirectory(prefix="bench-outbox-acked-") as tmp:
        acked = asyncio.run(_drain_acked(Path(tmp)))
    with tempfile.TemporaryDirectory(prefix="bench-outbox-load-") as tmp:
        cost = asyncio.run(_ack_cost(Path(tmp)))

    def metric(value: float, unit: str, target: float | None, better: str) -> dict[str, Any]:
        return {"value": value, "unit": unit, "target": target, "better": better}

    return {
        ACKED_METRIC: metric(round(acked["elapsed"], 2), "s", 30.0, "lower"),
        "server.ack_load_positions_per_s": metric(cost["rate"], "1/s", 10_000.0, "higher"),
        "server.ack_load_stored_per_s": metric(
            round(cost["stored_per_s"], 1), "1/s", None, "higher"
        ),
        "server.acks_per_s": metric(round(cost["acks_per_s"], 1), "1/s", None, "lower"),
        "server.ingest_cpu_pct_acks_on": metric(round(cost["cpu_on"], 1), "%", None, "lower"),
        "server.ingest_cpu_pct_acks_off": metric(round(cost["cpu_off"], 1), "%", None, "lower"),
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

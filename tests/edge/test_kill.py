"""kill -9 of a busy publisher, many times: nothing lost, duplicates only as (node, seq)."""

import asyncio
import math
import os
import random
import signal
import sqlite3
import sys
from pathlib import Path
from typing import Any

import pytest

from edge.outbox import RESERVED_KEEP

PROJECT_ROOT = Path(__file__).resolve().parents[2]
NODE = "T-kill"


async def start_child(
    db: Path, port: int, run: int, drain: bool = False
) -> asyncio.subprocess.Process:
    args = ["-m", "tests.edge.outbox_child", "--db", str(db), "--port", str(port)]
    args += ["--node", NODE, "--run", str(run)] + (["--drain"] if drain else [])
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, *args, cwd=PROJECT_ROOT, env=env, stdout=asyncio.subprocess.PIPE
    )
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 20)
    assert line.strip() == b"READY", f"child said {line!r}"
    return proc


def run_of(payload: dict[str, Any]) -> int:
    """The child's run number, encoded in the latitude (22.5 + run * 0.01 + i * 1e-6)."""
    return math.floor((float(payload["lat"]) - 22.5) / 0.01 + 1e-6)


def strip_replayed(payload: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in payload.items() if k != "replayed"}


@pytest.mark.slow
async def test_kill_9_during_busy_stream_loses_nothing(
    tmp_path, own_broker, collector, storing_server
):
    rng = random.Random()
    seed = rng.randrange(2**32)
    rng.seed(seed)
    db = tmp_path / "outbox.db"
    runs = 10
    for run in range(runs):
        proc = await start_child(db, own_broker.port, run)
        await asyncio.sleep(rng.uniform(0.05, 0.5))
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
        assert proc.returncode == -signal.SIGKILL
    drain = await start_child(db, own_broker.port, runs, drain=True)
    out, _ = await asyncio.wait_for(drain.communicate(), 60)
    assert drain.returncode == 0
    assert b"DONE" in out

    with sqlite3.connect(db) as conn:
        last_seq = int(conn.execute("SELECT value FROM meta WHERE key='last_seq'").fetchone()[0])
        reserved = {int(r[0]) for r in conn.execute("SELECT seq FROM reserved")}
        left = conn.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
    assert left == 0
    assert last_seq < RESERVED_KEEP  # every reservation is still on record
    # Every seq that was not reserved for an availability message was a position.
    expected = set(range(1, last_seq + 1)) - reserved
    assert len(expected) > 100, f"too few positions to test anything (seed {seed})"

    def arrived() -> set[int]:
        return {p["seq"] for p in collector.on("position")}

    await collector.wait_for(lambda: expected <= arrived(), within=20)
    positions = collector.on("position")
    assert arrived() == expected, f"seed {seed}"  # nothing lost, nothing invented
    by_seq: dict[int, dict[str, Any]] = {}
    for payload in positions:
        assert payload["node_id"] == NODE
        first = by_seq.setdefault(payload["seq"], strip_replayed(payload))
        assert strip_replayed(payload) == first, f"seq {payload['seq']} reused (seed {seed})"
    # Per run, seqs only grow: a restart never goes back.
    runs_seen = sorted({run_of(p) for p in positions})
    assert len(runs_seen) >= 5
    for run in runs_seen:
        seqs = [s for s, p in by_seq.items() if run_of(p) == run]
        later = [s for s, p in by_seq.items() if run_of(p) > run]
        if seqs and later:
            assert max(seqs) < min(later), f"run {run} overlaps a later run (seed {seed})"
    print(f"seed {seed}: {len(expected)} positions, {len(positions)} deliveries, runs {runs_seen}")

    def stopped() -> bool:
        return any(p["state"] == "stopped" for p in collector.on("availability"))

    await collector.wait_for(stopped, within=20)  # the clean stop of the last run
    availability = collector.on("availability")
    assert {p["seq"] for p in availability} <= reserved
    states = [p["state"] for p in availability]
    assert states.count("offline") >= 1  # the last will of a killed publisher
    newest = max(availability, key=lambda p: p["seq"])
    assert newest["state"] == "stopped"  # the last word, by sequence number

"""A full outbox is loud: one `health` message (device `outbox`) per change, not per message.

The outbox's state (`ok` → `thinning` → `full` and back, docs/edge-outbox.md) is handed
to the agents once per change, kept across restarts, and published by the node's
`HealthReporter` through the outbox itself, so it reaches the server in seq order once
the broker is back.
"""

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest

from contract import topics
from contract.payloads import Health, SignedCommand, decode
from contract.signing import generate_private_key, public_key_to_pem
from devtools.broker import MosquittoBroker
from edge.commands import ExecOutcome
from edge.config import AgentCommon
from edge.node import NodePlumbing
from edge.outbox import Outbox, OutboxFullError, OutboxState
from tests.edge.conftest import Collector, StoringServer
from tests.edge.test_outbox import lock_event, position

NODE = "T-FULL-1"
POS = topics.position(NODE)
LOCK = topics.lock(NODE)


class States:
    """A state listener that keeps what it was told."""

    def __init__(self) -> None:
        self.seen: list[tuple[OutboxState, str]] = []

    def __call__(self, state: OutboxState, reason: str) -> None:
        self.seen.append((state, reason))

    @property
    def states(self) -> list[OutboxState]:
        return [state for state, _ in self.seen]


def thinning_passes(caplog: pytest.LogCaptureFixture) -> int:
    return sum("thinned" in r.getMessage() for r in caplog.records if r.name == "edge.outbox")


def test_each_change_of_state_is_reported_once_not_per_message_or_pass(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="edge.outbox")
    box = Outbox(tmp_path / "o.db", NODE, 8_000, min_free_disk_bytes=0)
    states = States()
    box.add_state_listener(states)

    seqs = [box.enqueue(POS, position(i)) for i in range(400)]  # ~90 kB into 8 kB
    assert thinning_passes(caplog) >= 10  # many passes, each below the low-water mark
    assert box.stats().state == "thinning"
    assert states.states == ["thinning"]
    assert "old positions thinned" in states.seen[0][1]

    # Room again only when messages leave: the drain reports it once.
    box.ack_many(seqs)
    assert box.stats().state == "ok"
    assert states.states == ["thinning", "ok"]

    # Full of evidence: kept beyond the bound, positions refused, one report only.
    locks = [box.enqueue(LOCK, lock_event(i)) for i in range(100)]
    for i in range(20):
        with pytest.raises(OutboxFullError):
            box.enqueue(POS, position(1000 + i))
    assert box.stats().refused_total == 20
    assert states.states == ["thinning", "ok", "full"]
    assert "evidence" in states.seen[2][1]

    # Half drained is still not room; all drained is.
    box.ack_many(locks[:50])
    assert states.states == ["thinning", "ok", "full"]
    box.ack_many(locks[50:])
    assert states.states == ["thinning", "ok", "full", "ok"]


def test_the_state_survives_a_restart_and_its_recovery_is_reported(tmp_path):
    path = tmp_path / "o.db"
    box = Outbox(path, NODE, 8_000, min_free_disk_bytes=0)
    box.enqueue_many([(POS, position(i), False) for i in range(200)])
    assert box.stats().state == "thinning"
    box.close()

    again = Outbox(path, NODE, 8_000, min_free_disk_bytes=0)  # a power cut in between
    states = States()
    again.add_state_listener(states)
    assert again.stats().state == "thinning"
    again.enqueue(POS, position(500))  # still at its bound: no news
    assert states.states == []
    again.ack_many([item.id for item in again.pending(1000)])
    assert states.states == ["ok"]
    again.close()
    assert Outbox(path, NODE, 8_000).stats().state == "ok"


def test_a_failing_listener_does_not_break_the_outbox(tmp_path):
    box = Outbox(tmp_path / "o.db", NODE, 8_000, min_free_disk_bytes=0)

    def broken(state: OutboxState, reason: str) -> None:
        raise RuntimeError("listener bug")

    box.add_state_listener(broken)
    seqs = box.enqueue_many([(POS, position(i), False) for i in range(200)])
    assert len(seqs) == 200 and box.stats().state == "thinning"


# ---- the node publishes it, through a broker that goes away and comes back -------------


def node_config(tmp_path: Path, broker: MosquittoBroker) -> AgentCommon:
    key = tmp_path / "server.pub"
    key.write_bytes(public_key_to_pem(generate_private_key().public_key()))
    return AgentCommon.model_validate(
        {
            "node_id": NODE,
            "broker": {
                "host": "127.0.0.1",
                "port": broker.port,
                "reconnect_min_s": 0.1,
                "reconnect_max_s": 0.5,
            },
            "outbox": {
                "path": str(tmp_path / "outbox.sqlite3"),
                "nonce_path": str(tmp_path / "nonces.sqlite3"),
                "max_bytes": 4096,  # the smallest bound: about 17 positions
                "min_free_disk_bytes": 0,
            },
            "server_public_key": str(key),
        }
    )


async def refuse(_: SignedCommand) -> tuple[ExecOutcome, str]:
    raise AssertionError("no command expected")


async def until(predicate: Any, within: float = 20.0) -> None:
    async with asyncio.timeout(within):
        while not predicate():  # noqa: ASYNC110 - polls state of the code under test
            await asyncio.sleep(0.02)


async def test_full_outbox_is_published_as_health_once_and_its_recovery_once(
    tmp_path, own_broker, collector: Collector, storing_server: StoringServer, caplog
):
    caplog.set_level(logging.INFO)
    node = NodePlumbing.build(node_config(tmp_path, own_broker), "truck", refuse)
    box = node.outbox
    own_broker.stop()  # the truck is in a tunnel
    task = asyncio.create_task(node.link.run())
    try:
        offline = [box.enqueue(POS, position(i)) for i in range(120)]
        await asyncio.sleep(1.0)  # several reconnect attempts fail meanwhile
        assert not node.link.connected
        assert thinning_passes(caplog) >= 5
        stats = box.stats()
        assert stats.state == "thinning" and stats.thinned_total > 60
        waiting = [decode(Health, i.payload) for i in box.pending(1000) if "/health" in i.topic]
        assert [(h.device, h.status) for h in waiting] == [("outbox", "degraded")]
        assert waiting[0].seq < offline[-1]  # said when it filled, not at the end
        assert f"{stats.max_bytes} bytes" in waiting[0].detail

        own_broker.start()  # same port, persisted sessions
        await until(lambda: box.stats().count == 0 and node.link.connected)
        live = []
        for i in range(30):  # a 10 Hz receiver, the broker keeping up: nothing thinned
            live.append(box.enqueue(POS, position(500 + i)))
            await asyncio.sleep(0.1)
        await collector.wait_for(lambda: {p["seq"] for p in collector.on("position")} >= set(live))
        await asyncio.sleep(0.5)
    finally:
        await asyncio.wait_for(node.link.stop(), 20)
        await asyncio.wait_for(task, 20)
        box.close()

    health = [decode(Health, raw) for raw in collector.on("health")]
    by_seq = {h.seq: h for h in health}  # QoS 1 may repeat a message with its seq
    outbox_health = [by_seq[s] for s in sorted(by_seq) if by_seq[s].device == "outbox"]
    assert [h.status for h in outbox_health] == ["degraded", "ok"]
    degraded, recovered = outbox_health
    assert degraded.node_id == NODE and "thinned" in degraded.detail
    assert "room again" in recovered.detail
    # The recovery was said during the drain, before any of the live positions.
    assert degraded.seq < recovered.seq < live[0]
    # The agent's log says the change once too, not once per position or pass.
    said = [
        r.getMessage()
        for r in caplog.records
        if r.name == "edge.health" and "outbox" in r.getMessage()
    ]
    assert len(said) == 2 and said[0].startswith(f"truck {NODE}: outbox degraded")
    assert said[1].startswith(f"truck {NODE}: outbox ok")

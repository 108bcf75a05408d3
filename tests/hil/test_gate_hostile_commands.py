"""Hostile commands on a real gate agent's command topic (issue 17).

The bench of test_gate.py — Mosquitto with the shipped settings, the barrier and camera
stubs on their virtual ports, `python -m edge gate` with real OCR — and a truck in the
lane. A hostile client publishes on `bondwatch/v1/gate/{node}/command` every kind of bad
command (tests/hil/hostile_commands.py; that broker lets anyone publish there, as a stolen
server account would: the ACL is the first line, the agent's verification the last),
interleaved with the one `open` the test's server signs for the lane's current passage;
500 more arrive as a flood around it, and bad acknowledgements on `…/ack`.

Checked: the barrier's controller receives exactly one `open`, only after the valid
command was sent, and the light is green only then (the stub's lamp history and a poll of
the arm all along); every command with a readable command id is answered with its precise
outcome (docs/edge-outbox.md, "Commands") and no other is; the agent answers the next
command, the lane returns to idle and the process stays up; it counts each refusal by
reason (its `commands since start` line when it stops) and logs each reason once a minute.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from contract import topics
from tests.hil.hostile_commands import (
    OTHER_NODE,
    Sent,
    answered,
    check_tally,
    client,
    fields,
    flood,
    hostile,
    publish,
    refusal_lines,
    replayed,
    verified,
    wire,
)
from tests.hil.test_gate import (
    NODE,
    GateBench,
    arrive,
    barrier_reaches,
    command,
    control,
    gate_bench,
    leave,
    lit,
    stub_until,
    watching,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

#: Long enough for a flood to be worked through while the truck waits for its decision.
DECISION_TIMEOUT_S = 45.0
FLOOD = 500
#: How often the arm and the light are looked at while commands arrive.
POLL_S = 0.05
#: Bad acknowledgements on the agent's other subscription, `…/ack`: ignored, counted, and
#: logged once per reason (not_utf8, too_deep, invalid, wrong_node). A well-formed ack for
#: this node is left out: acks are not signed; only the server's accounts may write them.
HOSTILE_ACKS: list[bytes] = [
    b"\xff\xfe\x00",
    b"[" * 9000 + b"]" * 9000,
    wire({"node_id": NODE, "ts": "2026-01-01T00:00:00.000Z", "ranges": "all"}),
    wire({"node_id": OTHER_NODE, "ts": "2026-01-01T00:00:00.000Z", "ranges": [[1, 1000]]}),
]


def bad(key: Ed25519PrivateKey, pid: str, tag: str) -> list[Sent]:
    """Every kind of bad command, made from an `open` the server signed for `pid`."""
    return hostile(key, fields(command(key, pid)), "passage_id", tag)


@dataclass
class Watch:
    """The arm and the light, read from the stub every `POLL_S` while commands arrive."""

    task: asyncio.Task[None]
    #: (monotonic time the state was read by, the stub's state)
    samples: list[tuple[float, dict[str, Any]]]

    def before(self, moment: float) -> list[dict[str, Any]]:
        return [state for seen, state in self.samples if seen < moment]


@contextlib.asynccontextmanager
async def watching_barrier(gate: GateBench) -> AsyncIterator[Watch]:
    samples: list[tuple[float, dict[str, Any]]] = []

    async def poll() -> None:
        while True:
            state = await control(gate, "state")
            samples.append((time.monotonic(), state))
            await asyncio.sleep(POLL_S)

    watch = Watch(asyncio.create_task(poll()), samples)
    try:
        yield watch
    finally:
        watch.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watch.task


def _log_since(gate: GateBench, mark: int) -> list[str]:
    return gate.agent.log_path.read_text(errors="replace")[mark:].splitlines()


def _down_and_red(state: dict[str, Any]) -> bool:
    return bool(
        state["closed_limit"]
        and not state["open_limit"]
        and state["position"] == 0.0
        and state["motion"] == "still"
        and state["lamp"] == "red"
    )


@pytest.fixture
def gate(tmp_path: Path) -> Iterator[GateBench]:
    with gate_bench(tmp_path, DECISION_TIMEOUT_S) as bench:
        yield bench


async def test_hostile_commands_never_open_the_barrier_the_signed_open_does_once(gate):
    started = time.monotonic()
    key = gate.key
    first = await control(gate, "state")
    lamps, opens = len(first["lamps"]), len(first["commands"])
    log_mark = len(gate.agent.log_path.read_text(errors="replace"))
    sent: list[Sent] = []
    host, port = gate.broker.host, gate.broker.port
    async with (
        watching(gate) as server,
        client(host, port, "hostile") as enemy,
        watching_barrier(gate) as watch,
    ):
        # No truck in the lane: the bad ones, and a signed open for a passage not there.
        idle = [
            *bad(key, "P-nobody", "idle"),
            verified(command(key, "P-nobody"), "refused", "no truck is in the lane", "no truck"),
        ]
        await publish(enemy, "gate", NODE, idle)
        sent += idle
        await answered(server.answers, sent, NODE)
        assert _down_and_red(await control(gate, "state"))

        # A truck waits for its decision: the bad ones, and signed opens that are not its.
        passage = await arrive(gate, server, "CSQU3054383")
        pid = passage["passage_id"]
        await server.lane_state("waiting", passage_id=pid)
        waiting = [
            *bad(key, pid, "waiting"),
            verified(command(key, pid, lane="L2"), "refused", "lane L2", "another lane"),
            verified(
                command(key, "P-another-passage"),
                "refused",
                f"passage P-another-passage is not the current passage {pid}",
                "another passage",
            ),
        ]
        await publish(enemy, "gate", NODE, waiting)
        sent += waiting
        for raw in HOSTILE_ACKS * 25:
            await enemy.publish(topics.ack("gate", NODE), raw, qos=1)
        await answered(server.answers, sent, NODE)
        assert _down_and_red(await control(gate, "state"))

        # The flood, the server's open in its middle, its replays among the rest.
        flood_mark = len(gate.agent.log_path.read_text(errors="replace"))
        aim = fields(command(key, pid))
        before = flood(key, aim, "passage_id", FLOOD // 2, "before")
        await publish(enemy, "gate", NODE, before)
        valid = command(key, pid)
        valid_sent_at = time.monotonic()
        await server.send(valid)
        good = verified(valid, "done", f"barrier open for passage {pid}", "the server's open")
        after = flood(key, aim, "passage_id", FLOOD - len(before), "after", replayed(valid))
        await publish(enemy, "gate", NODE, after)
        sent += [*before, good, *after]
        await answered(server.answers, sent, NODE, within_s=40)
        flood_lines = _log_since(gate, flood_mark)

        state = await barrier_reaches(gate, "open_limit", 5)
        assert state["lamp"] == "green"
        assert state["commands"][opens:] == ["open"], state["commands"]
        assert not watch.task.done()
        early = watch.before(valid_sent_at)
        assert early and all(_down_and_red(s) for s in early), [
            s for s in early if not _down_and_red(s)
        ][:3]
        opened = await server.lane_state("open", passage_id=pid)
        assert opened.signal == "green"

        # The truck drives through; the lane is idle again and the agent still answers.
        mark = len(server.lane)
        await leave(gate)
        await server.lane_state("idle", since=mark)
        late = [verified(command(key, pid), "refused", "no truck is in the lane", "too late")]
        await publish(enemy, "gate", NODE, late)
        sent += late
        await answered(server.answers, sent, NODE)

    last = await stub_until(gate, _down_and_red, 5, "down and red")
    assert last["commands"][opens:] == ["open", "close"]
    assert lit(last, lamps) == ["green", "red"]  # green once: for the signed open
    green = [s for _, s in watch.samples if s["lamp"] != "red"]
    assert green and all(s["open_limit"] for s in green)
    assert [lane.state for lane in server.lane].count("opening") == 1
    assert {(lane.state, lane.passage_id) for lane in server.lane if lane.signal == "green"} == {
        ("open", pid)
    }
    assert gate.agent.running

    # The log: each refusal reason once a minute, however many arrived.
    minutes = int((time.monotonic() - started) // 60) + 1
    lines = _log_since(gate, log_mark)
    logged = refusal_lines(lines)
    assert set(logged) == {item.reason for item in sent if item.reason is not None}
    assert max(logged.values()) <= minutes, logged
    ack_lines = [line for line in lines if "acknowledgement" in line]
    assert 1 <= len(ack_lines) <= len(HOSTILE_ACKS) * minutes, ack_lines
    # The signed open makes 6 lines (verified, opening, open, go, done, green); a reason
    # first seen in the flood (replay) 1: 500 commands, a handful of lines.
    assert len(flood_lines) <= 10, "\n".join(flood_lines)

    # The counts, as the agent says them when it stops.
    assert gate.agent.stop() == 0
    check_tally(gate.agent.log_path.read_text(errors="replace"), sent)
    assert sum(1 for item in sent if item.reason is not None) > FLOOD

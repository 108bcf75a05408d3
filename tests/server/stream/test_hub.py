"""The fan-out hub on its own: throttling, slow clients, publishing from threads."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime
from typing import Any

import pytest

from contract.payloads import Position
from server.store.database import IncomingMessage
from server.stream.hub import DROPPED, Hub, position_event

T0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


def pos(vehicle: str, n: int) -> dict[str, Any]:
    return {"vehicle_id": vehicle, "seq": n, "lat": 23.0, "lon": 113.0 + n / 100}


def drain(client: Any) -> list[dict[str, Any]]:
    out = []
    while not client.queue.empty():
        out.append(client.queue.get_nowait())
    return out


async def test_every_client_gets_alarms_and_passages() -> None:
    hub = Hub()
    a, b = hub.connect("a"), hub.connect("b")
    hub.publish("alarm", {"id": 1, "type": "LOCK_TAMPER"})
    hub.publish("passage", {"gate_id": "G-1", "containers": ["CSQU3054383"]})
    for client in (a, b):
        assert drain(client) == [
            {"type": "alarm", "data": {"id": 1, "type": "LOCK_TAMPER"}},
            {"type": "passage", "data": {"gate_id": "G-1", "containers": ["CSQU3054383"]}},
        ]
    with pytest.raises(ValueError, match="unknown"):
        hub.publish("speed", {})  # type: ignore[arg-type]


async def test_positions_throttled_per_vehicle_newest_wins() -> None:
    hub = Hub(position_interval_s=1.0, flush_every_s=3600)
    client = hub.connect("a")
    for n in range(1, 6):
        hub.publish("position", pos("TRK-1", n))
    hub.publish("position", pos("TRK-2", 1))
    sent = drain(client)
    assert [(m["data"]["vehicle_id"], m["data"]["seq"]) for m in sent] == [
        ("TRK-1", 1),
        ("TRK-2", 1),
    ]
    last = client.last_sent["TRK-1"]
    hub.flush_pending(last + 0.5)  # too early
    assert drain(client) == []
    hub.flush_pending(last + 1.0)
    assert [m["data"]["seq"] for m in drain(client)] == [5]  # the newest held fix
    hub.flush_pending(last + 5.0)
    assert drain(client) == []  # nothing held any more


async def test_flusher_sends_held_position() -> None:
    hub = Hub(position_interval_s=0.2, flush_every_s=0.05)
    client = hub.connect("a")
    hub.publish("position", pos("TRK-1", 1))
    hub.publish("position", pos("TRK-1", 2))
    first = await asyncio.wait_for(client.next(), 1)
    second = await asyncio.wait_for(client.next(), 1)
    assert (first["data"]["seq"], second["data"]["seq"]) == (1, 2)


async def test_slow_client_dropped_others_unaffected() -> None:
    hub = Hub(queue_size=10)
    slow, fast = hub.connect("slow"), hub.connect("fast")
    received = []
    for n in range(50):
        hub.publish("passage", {"n": n})
        received += drain(fast)
    assert [m["data"]["n"] for m in received] == list(range(50))
    assert drain(slow) == [DROPPED]
    assert hub.client_count == 1 and hub.dropped_clients == 1
    hub.publish("passage", {"n": 50})
    assert drain(slow) == []  # dropped for good


async def test_publish_from_worker_threads() -> None:
    hub = Hub(queue_size=10_000)
    client = hub.connect("a")

    def worker(k: int) -> None:
        for n in range(100):
            hub.publish("alarm", {"worker": k, "n": n})

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()

    def join_all() -> None:
        for t in threads:
            t.join()

    await asyncio.to_thread(join_all)
    got: list[dict[str, Any]] = []
    while len(got) < 400:
        got.append(await asyncio.wait_for(client.next(), 2))
    for k in range(4):
        assert [m["data"]["n"] for m in got if m["data"]["worker"] == k] == list(range(100))


async def test_ingest_batch_publishes_newest_fix_per_vehicle() -> None:
    hub = Hub()
    client = hub.connect("a")

    def incoming(node: str, seq: int, fix: str = "3d") -> IncomingMessage:
        body: dict[str, Any] = {"node_id": node, "seq": seq, "ts": T0.replace(second=seq)}
        if fix != "none":
            body |= {"lat": 23.0, "lon": 113.0, "fix": fix}
        else:
            body |= {"fix": "none"}
        msg = Position.model_validate(body)
        return IncomingMessage("position", msg, msg.model_dump_json(), T0)

    batch = [incoming("TRK-1", 3), incoming("TRK-1", 5), incoming("TRK-1", 4)]
    batch += [incoming("TRK-2", 1, "none")]
    await hub.on_messages(batch)
    assert drain(client) == [
        {
            "type": "position",
            "data": {
                "vehicle_id": "TRK-1",
                "seq": 5,
                "ts": "2026-11-23T08:00:05.000Z",
                "lat": 23.0,
                "lon": 113.0,
                "alt_m": None,
                "speed_kmh": None,
                "course_deg": None,
                "fix": "3d",
                "replayed": False,
            },
        }
    ]


async def test_ingest_fixes_held_as_fixes_and_sent_as_their_newest_message() -> None:
    """A throttled vehicle's fix is held as the fix itself; the message sent at the
    flush is the newest fix's, the same as `position_event` of it; a client that follows
    other vehicles gets none, one that takes no positions holds none."""
    hub = Hub(position_interval_s=1.0, flush_every_s=3600)
    every = hub.connect("every")
    trk2 = hub.connect("trk2", vehicles=frozenset({"TRK-2"}))
    alarms = hub.connect("alarms", kinds=frozenset({"alarm"}))

    def batch(*seqs: int) -> list[IncomingMessage]:
        out = []
        for seq in seqs:
            msg = Position.model_validate(
                {
                    "node_id": "TRK-1",
                    "seq": seq,
                    "ts": T0.replace(second=seq),
                    "lat": 23.0,
                    "lon": 113.0 + seq / 1000,
                    "fix": "3d",
                }
            )
            out.append(IncomingMessage("position", msg, msg.model_dump_json(), T0))
        return out

    await hub.on_messages(batch(1))
    assert [m["data"]["seq"] for m in drain(every)] == [1]
    await hub.on_messages(batch(2, 3))
    await hub.on_messages(batch(4))
    assert drain(every) == []
    held = every.pending["TRK-1"]
    assert isinstance(held, Position) and held.seq == 4
    assert trk2.pending == {} and alarms.pending == {}
    hub.flush_pending(every.last_sent["TRK-1"] + 1.0)
    assert drain(every) == [{"type": "position", "data": position_event(held)}]
    assert every.pending == {}
    assert drain(trk2) == [] and drain(alarms) == []

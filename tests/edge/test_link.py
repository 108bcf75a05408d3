"""The MQTT link against a real Mosquitto: order, replay flags, restarts, availability."""

import asyncio
import contextlib
import json
from typing import Any

import aiomqtt
import pytest

from contract import topics
from contract.ids import format_ts, utc_now
from contract.payloads import Availability, Health, decode, decode_edge
from edge.link import MqttLink
from edge.outbox import Outbox
from tests.edge.conftest import settings_for

NODE = "T1"


def position(i: int) -> dict[str, Any]:
    return {
        "ts": format_ts(utc_now()),
        "lat": 22.5 + i * 1e-5,
        "lon": 113.9,
        "alt_m": 10.0,
        "speed_kmh": 50.0,
        "course_deg": 90.0,
        "fix": "3d",
        "sats": 12,
        "hdop": 0.9,
        "systems": ["GPS", "BDS"],
    }


async def no_command(raw: bytes) -> None:
    raise AssertionError(f"unexpected command {raw!r}")


@contextlib.asynccontextmanager
async def running(link: MqttLink):
    task = asyncio.create_task(link.run())
    try:
        yield task
    finally:
        await asyncio.wait_for(link.stop(), 20)
        await asyncio.wait_for(task, 20)


async def until(predicate, within: float = 20.0) -> None:
    async with asyncio.timeout(within):
        while not predicate():  # noqa: ASYNC110 - polls state of the code under test
            await asyncio.sleep(0.02)


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
async def test_backlog_from_broker_outage_arrives_once_in_order_flagged_replayed(
    tmp_path, own_broker, collector, storing_server, protocol
):
    box = Outbox(tmp_path / "o.db", NODE, 10_000_000)
    settings = settings_for(own_broker, protocol=protocol)
    link = MqttLink(settings, "truck", NODE, box, no_command)
    async with running(link):
        await until(lambda: link.connected)
        live = [box.enqueue(topics.position(NODE), position(i)) for i in range(5)]
        await collector.wait_for(lambda: len(collector.on("position")) >= 5)
        await until(lambda: box.stats().count == 0)  # the server acknowledged them
        own_broker.stop()
        await until(lambda: not link.connected)
        during = [box.enqueue(topics.position(NODE), position(100 + i)) for i in range(40)]
        await asyncio.sleep(0.5)  # the link retries meanwhile
        assert box.stats().count == 40
        own_broker.start()
        await collector.wait_for(lambda: len(collector.on("position")) >= 45)
        await until(lambda: box.stats().count == 0)
    # QoS 1 is at least once: a broker restart with persistence may deliver again what
    # was in flight. After de-duplication by (node, seq), as the server stores them,
    # every message is there once, in seq order, and a repeat is the same message.
    got: list[dict[str, object]] = []
    first: dict[object, dict[str, object]] = {}
    for payload in collector.on("position"):
        if payload["seq"] in first:
            assert payload == first[payload["seq"]]
            continue
        first[payload["seq"]] = payload
        got.append(payload)
    assert [p["seq"] for p in got] == live + during
    assert [p.get("replayed", False) for p in got] == [False] * 5 + [True] * 40
    for payload in got:
        model = decode_edge("position", json.dumps(payload))
        assert model.node_id == NODE
    assert link.connections_total == 2


async def test_availability_online_stopped_and_last_will(tmp_path, own_broker, collector):
    box = Outbox(tmp_path / "o.db", NODE, 10_000_000)
    link = MqttLink(settings_for(own_broker), "truck", NODE, box, no_command)
    async with running(link):
        await collector.wait_for(lambda: len(collector.on("availability")) >= 1)
    await collector.wait_for(lambda: len(collector.on("availability")) >= 2)
    states = [(p["state"], p["seq"]) for p in collector.on("availability")]
    assert [s for s, _ in states] == ["online", "stopped"]
    assert states[0][1] < states[1][1]
    reservations = box.reservations()
    assert reservations[states[0][1]] == "availability online"
    assert reservations[states[1][1]] == "availability stopped"
    # The retained state a late subscriber sees is the last one.
    async with aiomqtt.Client("127.0.0.1", own_broker.port) as late:
        await late.subscribe(topics.availability("truck", NODE), qos=1)
        async with asyncio.timeout(5):
            async for msg in late.messages:
                assert msg.retain
                assert decode(Availability, msg.payload).state == "stopped"
                break

    # Cancelling run() instead of stop() still leaves `stopped`, not a stale `online`
    # (the last will `offline` of a crashed publisher is checked in test_kill).
    link2 = MqttLink(settings_for(own_broker), "truck", NODE, box, no_command)
    task = asyncio.create_task(link2.run())
    await collector.wait_for(lambda: len(collector.on("availability")) >= 3)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.wait_for(task, 20)
    assert task.cancelled()
    await collector.wait_for(lambda: len(collector.on("availability")) >= 4)
    assert [p["state"] for p in collector.on("availability")][2:] == ["online", "stopped"]


async def test_live_messages_are_not_starved_by_a_long_replay(tmp_path, own_broker, collector):
    box = Outbox(tmp_path / "o.db", NODE, 100_000_000)
    backlog = box.enqueue_many([(topics.position(NODE), position(i), False) for i in range(3000)])
    link = MqttLink(settings_for(own_broker), "truck", NODE, box, no_command, max_inflight=16)
    async with running(link):
        await until(lambda: link.connected)
        await collector.wait_for(lambda: len(collector.on("position")) >= 100)
        fresh = box.enqueue(topics.position(NODE), position(9999))
        await collector.wait_for(lambda: fresh in {p["seq"] for p in collector.on("position")})
        arrived_with = len(collector.on("position"))
        await collector.wait_for(lambda: len(collector.on("position")) >= 3001, within=60)
    seqs = [p["seq"] for p in collector.on("position")]
    assert arrived_with < 2900, "the live message waited for the whole backlog"
    assert [s for s in seqs if s != fresh] == backlog  # the backlog itself stays in order
    live = next(p for p in collector.on("position") if p["seq"] == fresh)
    assert live.get("replayed", False) is False
    assert all(p["replayed"] for p in collector.on("position") if p["seq"] != fresh)


async def test_non_replayable_channels_are_never_flagged(tmp_path, own_broker, collector):
    box = Outbox(tmp_path / "o.db", NODE, 10_000_000)
    health = {"ts": format_ts(utc_now()), "device": "gnss", "status": "down", "detail": "no fix"}
    box.enqueue(topics.health("truck", NODE), health)
    link = MqttLink(settings_for(own_broker), "truck", NODE, box, no_command)
    async with running(link):
        await collector.wait_for(lambda: len(collector.on("health")) >= 1)
    got = collector.on("health")[0]
    assert "replayed" not in got
    assert decode(Health, json.dumps(got)).status == "down"


async def test_reconnects_after_a_broker_crash_and_resends_unacked(
    tmp_path, own_broker, collector, storing_server
):
    box = Outbox(tmp_path / "o.db", NODE, 100_000_000)
    # A killed broker loses the subscriber's session (no autosave yet); a slower
    # reconnect lets the test's subscriber come back first.
    slow = settings_for(own_broker, reconnect_min_s=1.5, reconnect_max_s=1.5)
    link = MqttLink(slow, "truck", NODE, box, no_command)
    async with running(link):
        await until(lambda: link.connected)
        first = box.enqueue_many([(topics.position(NODE), position(i), False) for i in range(500)])
        own_broker.kill()  # mid-stream crash: some publishes never get their PUBACK
        await until(lambda: not link.connected)
        own_broker.start()
        await until(lambda: box.stats().count == 0, within=30)
    await collector.wait_for(
        lambda: set(first) <= {p["seq"] for p in collector.on("position")}, within=20
    )
    assert link.connections_total >= 2

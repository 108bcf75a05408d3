"""A gate lane's `lane` messages: validated, stored once, pushed to the console stream."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiomqtt

from contract import topics
from contract.broker import BrokerSettings
from server.config import IngestSettings
from server.ingest import Ingest, Rejection, validate
from server.metrics import Metrics
from server.stream.hub import Hub

NODE = "G-BAIYUN-1"


def lane(seq: int, state: str = "waiting", signal: str = "red", **over: Any) -> bytes:
    body: dict[str, Any] = {
        "node_id": NODE,
        "seq": seq,
        "ts": f"2026-11-23T08:15:{seq:02d}.000Z",
        "lane": "L1",
        "state": state,
        "passage_id": "P-G-BAIYUN-1-L1-20261123T081502-a1b2c3",
        "signal": signal,
        "reason": None,
    }
    body.update(over)
    return json.dumps(body).encode()


def reason(topic: str, payload: bytes) -> str:
    outcome = validate(topic, payload)
    return outcome.reason if isinstance(outcome, Rejection) else "accepted"


def test_lane_messages_are_validated_like_every_edge_message():
    assert reason(topics.lane(NODE), lane(1)) == "accepted"
    assert reason(topics.lane(NODE), lane(2, "open", "green")) == "accepted"
    assert reason(topics.lane(NODE), lane(3, "idle", passage_id=None)) == "accepted"
    assert reason(topics.lane(NODE), lane(4, "waiting", "green")) == "invalid"
    assert reason(topics.lane(NODE), lane(5, signal="blue")) == "invalid"
    assert reason(topics.lane("G-OTHER"), lane(6)) == "node_mismatch"


async def test_lane_messages_are_stored_not_rejected_and_streamed(own_broker, services):
    broker = own_broker  # no retained lane messages of other tests
    metrics = Metrics()
    hub = Hub()
    console = hub.connect("console")
    ingest = Ingest(
        BrokerSettings(host=broker.host, port=broker.port),
        IngestSettings(batch_wait_ms=5),
        services.store,
        metrics,
        handlers=[hub.on_messages],
        client_id="test-ingest-lane",
    )
    task = asyncio.create_task(ingest.run())
    sent = [("reading", "red"), ("waiting", "red"), ("opening", "red"), ("open", "green")]
    try:
        await asyncio.wait_for(ingest.connected.wait(), 10)
        async with aiomqtt.Client(broker.host, broker.port, identifier="test-gate-1") as pub:
            for seq, (state, signal) in enumerate(sent, start=1):
                await pub.publish(topics.lane(NODE), lane(seq, state, signal), qos=1, retain=True)
            await pub.publish(topics.lane(NODE), lane(1, "reading"), qos=1)  # a repeat
        events: list[dict[str, Any]] = []
        async with asyncio.timeout(10):
            while len(events) < len(sent):
                message = await console.next()
                if message["type"] == "lane":
                    events.append(message["data"])
        for _ in range(100):
            if metrics.value("bondwatch_ingest_messages_total", outcome="duplicate") >= 1:
                break
            await asyncio.sleep(0.05)
    finally:
        task.cancel()
    assert services.store.message_count() == len(sent)
    assert metrics.value("bondwatch_ingest_messages_total", outcome="stored") == len(sent)
    assert metrics.value("bondwatch_ingest_messages_total", outcome="duplicate") == 1
    for why in ("bad_topic", "not_json", "invalid", "node_mismatch"):
        assert metrics.value("bondwatch_ingest_messages_total", outcome="rejected", reason=why) == 0
    assert [(e["state"], e["signal"], e["seq"]) for e in events] == [
        (state, signal, seq) for seq, (state, signal) in enumerate(sent, start=1)
    ]
    assert events[-1]["node_id"] == NODE and events[-1]["lane"] == "L1"

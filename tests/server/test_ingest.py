"""Ingest against a real Mosquitto: validation, exactly-once storage, trip start."""

import asyncio
import json
from datetime import UTC, datetime, timedelta

import aiomqtt

from contract import topics
from contract.broker import BrokerSettings
from contract.ids import format_ts
from server.config import IngestSettings
from server.ingest import Ingest, Rejection, validate
from server.metrics import Metrics
from server.trips import TripTracker

T0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


def position(seq, node="TRK-1", **over):
    body = {
        "node_id": node,
        "seq": seq,
        "ts": (T0 + timedelta(seconds=seq)).isoformat().replace("+00:00", "Z"),
        "lat": 23.09,
        "lon": 113.5,
        "fix": "3d",
        "sats": 12,
        "hdop": 0.8,
    }
    body.update(over)
    return json.dumps(body).encode()


def reason(topic: str, payload: bytes) -> str:
    outcome = validate(topic, payload)
    return outcome.reason if isinstance(outcome, Rejection) else "accepted"


def test_validate_rejects_with_reasons():
    assert reason(topics.position("TRK-1"), position(1)) == "accepted"
    assert reason("bondwatch/v1/truck/TRK-1/speed", b"{}") == "bad_topic"
    assert reason(topics.command("truck", "TRK-1"), b"{}") == "bad_topic"
    assert reason(topics.position("TRK-1"), b"{oops") == "not_json"
    assert reason(topics.position("TRK-1"), position(1, lat=99)) == "invalid"
    assert reason(topics.position("TRK-2"), position(1)) == "node_mismatch"


async def test_ingest_stores_each_message_once_and_starts_trip(own_broker, services):
    broker = own_broker  # no retained messages of other tests
    from tests.server.conftest import declaration

    services.store.create_declaration(declaration(), T0 - timedelta(hours=1))
    metrics = Metrics()
    settings = BrokerSettings(host=broker.host, port=broker.port)
    ingest = Ingest(
        settings,
        IngestSettings(batch_wait_ms=5),
        services.store,
        metrics,
        handlers=[TripTracker(services.store, start_on_first_fix=True).on_messages],
        client_id="test-ingest-1",
    )
    task = asyncio.create_task(ingest.run())
    try:
        await asyncio.wait_for(ingest.connected.wait(), 10)
        async with aiomqtt.Client(broker.host, broker.port, identifier="test-pub-1") as pub:
            for seq in range(1, 51):
                await pub.publish(topics.position("TRK-1"), position(seq), qos=1)
            for seq in (10, 20, 30):  # repeats after a reconnect
                await pub.publish(topics.position("TRK-1"), position(seq), qos=1)
            await pub.publish(topics.position("TRK-1"), b"garbage", qos=1)
            await pub.publish(topics.position("TRK-1"), position(51, lat=123), qos=1)
        # rejections are counted as messages arrive, stored and repeated ones once their
        # batch is written, and the trip starts in the handler after that: wait for all
        for _ in range(200):
            trip = services.store.get_trip("D-0001")
            if (
                metrics.value("bondwatch_ingest_messages_total", outcome="stored") >= 50
                and metrics.value("bondwatch_ingest_messages_total", outcome="duplicate") >= 3
                and metrics.value(
                    "bondwatch_ingest_messages_total", outcome="rejected", reason="not_json"
                )
                + metrics.value(
                    "bondwatch_ingest_messages_total", outcome="rejected", reason="invalid"
                )
                >= 2
                and trip is not None
                and trip.status == "in_transit"
            ):
                break
            await asyncio.sleep(0.05)
    finally:
        task.cancel()
    assert services.store.message_count() == 50
    assert metrics.value("bondwatch_ingest_messages_total", outcome="stored") == 50
    assert metrics.value("bondwatch_ingest_messages_total", outcome="duplicate") == 3
    for why in ("not_json", "invalid"):  # b"garbage", lat=123
        assert metrics.value("bondwatch_ingest_messages_total", outcome="rejected", reason=why) == 1
        assert metrics.value("bondwatch_ingest_rejected_total", channel="position", reason=why) == 1
    trip = services.store.get_trip("D-0001")
    assert trip.status == "in_transit" and trip.started_at == T0 + timedelta(seconds=1)
    assert [p["seq"] for p in services.store.track("TRK-1", None, None)] == list(range(1, 51))


async def test_unacknowledged_messages_survive_a_server_restart(own_broker, services):
    broker = own_broker
    """The broker keeps what the server had not acknowledged (persistent session)."""
    settings = BrokerSettings(host=broker.host, port=broker.port)
    metrics = Metrics()
    ingest = Ingest(settings, IngestSettings(), services.store, metrics, client_id="test-ingest-2")
    task = asyncio.create_task(ingest.run())
    await asyncio.wait_for(ingest.connected.wait(), 10)
    task.cancel()
    await asyncio.sleep(0.2)
    async with aiomqtt.Client(broker.host, broker.port, identifier="test-pub-2") as pub:
        for seq in range(1, 21):
            await pub.publish(topics.position("TRK-7"), position(seq, node="TRK-7"), qos=1)
    ingest2 = Ingest(
        settings,
        IngestSettings(batch_wait_ms=5),
        services.store,
        metrics,
        client_id="test-ingest-2",
    )
    task2 = asyncio.create_task(ingest2.run())
    try:
        for _ in range(200):
            if metrics.value("bondwatch_ingest_messages_total", outcome="stored") >= 20:
                break
            await asyncio.sleep(0.05)
    finally:
        task2.cancel()
    assert [p["seq"] for p in services.store.track("TRK-7", None, None)] == list(range(1, 21))


def test_last_will_is_timed_by_its_arrival():
    """The will's `ts` is when the gateway connected; the event is the lost connection."""
    topic = topics.availability("truck", "TRK-1")
    will = json.dumps({"node_id": "TRK-1", "seq": 7, "ts": "2020-01-01T06:00:00.000Z",
                       "state": "offline"}).encode()  # fmt: skip
    outcome = validate(topic, will)
    assert not isinstance(outcome, Rejection)
    assert outcome.message.ts == outcome.received_at
    assert json.loads(outcome.raw)["ts"] == format_ts(outcome.received_at)
    assert outcome.message.seq == 7
    online = json.dumps({"node_id": "TRK-1", "seq": 8, "ts": "2020-01-01T06:00:00.000Z",
                         "state": "online"}).encode()  # fmt: skip
    kept = validate(topic, online)
    assert not isinstance(kept, Rejection)
    assert kept.message.ts == datetime(2020, 1, 1, 6, tzinfo=UTC)


async def test_passages_have_a_connection_of_their_own(own_broker, services):
    """A passage is decided while the other connection is still busy with positions,
    and a session that took everything before no longer gets passages once split."""
    from tests.server.gates.conftest import passage_fields

    broker = own_broker
    settings = BrokerSettings(host=broker.host, port=broker.port)
    metrics = Metrics()
    main_seen: list[str] = []
    busy = asyncio.Event()
    release = asyncio.Event()

    async def slow_main(batch):
        main_seen.extend(item.channel for item in batch)
        busy.set()
        await release.wait()  # judging a long backlog

    passages_seen: list[str] = []

    async def gate(batch):
        passages_seen.extend(item.message.passage_id for item in batch)

    def ingest(handler, client_id, passages):
        return Ingest(settings, IngestSettings(batch_wait_ms=5), services.store, metrics,
                      handlers=[handler], client_id=client_id, passages=passages)  # fmt: skip

    before = ingest(slow_main, "test-split-main", None)  # an unsplit server's session
    task = asyncio.create_task(before.run())
    await asyncio.wait_for(before.connected.wait(), 10)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)

    main = ingest(slow_main, "test-split-main", False)
    gates = ingest(gate, "test-split-passages", True)
    tasks = [asyncio.create_task(i.run()) for i in (main, gates)]
    try:
        await asyncio.wait_for(main.connected.wait(), 10)
        await asyncio.wait_for(gates.connected.wait(), 10)
        body = {"node_id": "G-1", "seq": 1, "ts": format_ts(T0), **passage_fields("P-1")}
        async with aiomqtt.Client(broker.host, broker.port, identifier="test-pub-s") as pub:
            for seq in range(1, 201):
                await pub.publish(topics.position("TRK-S"), position(seq, node="TRK-S"), qos=1)
            await asyncio.wait_for(busy.wait(), 10)
            await pub.publish(topics.passage("G-1"), json.dumps(body).encode(), qos=1)
        for _ in range(100):
            if passages_seen:
                break
            await asyncio.sleep(0.05)
        assert passages_seen == ["P-1"] and not release.is_set()
        release.set()
        for _ in range(200):
            if metrics.value("bondwatch_ingest_messages_total", outcome="stored") >= 201:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)  # a passage the main session still took would come now
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    assert metrics.value("bondwatch_ingest_messages_total", outcome="stored") == 201
    assert set(main_seen) == {"position"} and len(main_seen) == 200
    assert metrics.value("bondwatch_ingest_messages_total", outcome="duplicate") == 0

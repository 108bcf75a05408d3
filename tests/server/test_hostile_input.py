"""Issue 17 against a real Mosquitto with the shipped settings: one client publishes every
class of bad message, interleaved with valid positions of its own node and of another.
Every valid one is stored; every bad one is refused with its reason, counted, kept as a
dead letter, acknowledged (not delivered again after the server reconnects its
persistent session), told to the hooks, and logged once per node and reason."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import aiomqtt
import pytest

from contract import topics
from contract.broker import BrokerSettings
from contract.ids import format_ts, utc_now
from server.config import IngestSettings
from server.ingest import Ingest, Rejected, validate
from server.metrics import Metrics
from server.store.dead_letters import RAW_BYTES, DeadLetters

GOOD = "TRK-GOOD"
BAD = "TRK-BAD"


def body(node: str, seq: int | str, ts: datetime, **over: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"node_id": node, "seq": seq, "ts": format_ts(ts), "lat": 23.09,
                           "lon": 113.5, "fix": "3d", "sats": 12, "hdop": 0.8}  # fmt: skip
    out.update(over)
    return out


def raw(value: dict[str, Any]) -> bytes:
    return json.dumps(value).encode()


def hostile(now: datetime) -> list[tuple[str, bytes, str]]:
    """(topic, payload, expected reason) of every class of bad message, from BAD."""
    pos, health = topics.position(BAD), topics.health("truck", BAD)
    ts = now - timedelta(seconds=30)
    health_body = {"node_id": BAD, "seq": 9000, "ts": format_ts(ts), "device": "gnss",
                   "status": "ok"}  # fmt: skip
    deep = raw(health_body)[:-1] + b', "x": ' + b"[" * 1000 + b"]" * 1000 + b"}"
    long_seq = raw(health_body).replace(b'"seq": 9000', b'"seq": ' + b"7" * 5000)
    out = [
        (pos, b"[" * 30_000 + b"]" * 30_000, "too_large"),  # 60 KB: the broker passes it
        (health, deep, "too_deep"),
        (pos, raw(body(BAD, 1, ts)).replace(b'"seq": 1', b'"seq": ' + b"7" * 5000), "too_large"),
        (health, long_seq, "number_too_long"),
        (pos, raw(body(BAD, 9001, ts, systems=["GPS"] * 20)), "invalid"),
        (pos, raw(body(BAD, 9002, ts)).replace(b'"fix"', b'"fix\xff"'), "not_utf8"),
        (pos, raw(body(BAD, 9003, datetime(2099, 1, 1, tzinfo=UTC))), "clock_ahead"),
        (pos, raw(body(BAD, 9004, ts, pad="x" * 10_000)), "too_large"),
        (pos, raw(body(BAD, 9005, ts)).replace(b"23.09", b"NaN"), "non_finite"),
        (pos, b"[1, 2]", "not_object"),
        (pos, raw(body(GOOD, 9006, ts)), "node_mismatch"),
        (pos, raw(body(BAD, 9007, ts, colour="red")), "invalid"),
        ("bondwatch/v1/drone/X-1/health", raw(health_body), "bad_topic"),
    ]
    out += [(pos, b"garbage %d" % n, "not_json") for n in range(20)]  # a burst
    return out


async def wait_for(condition: Any) -> None:
    async with asyncio.timeout(20):
        while not condition():  # noqa: ASYNC110 - counters and tables, no event to wait on
            await asyncio.sleep(0.05)


async def test_every_bad_message_is_refused_and_every_good_one_stored(
    own_broker: Any, services: Any, caplog: pytest.LogCaptureFixture
) -> None:
    broker = own_broker
    metrics = Metrics()
    told: list[Rejected] = []

    def failing_hook(_: Rejected) -> None:
        raise RuntimeError("a broken hook")

    settings = IngestSettings(batch_wait_ms=5, dead_letters_max=1000)

    def ingest() -> Ingest:
        return Ingest(
            BrokerSettings(host=broker.host, port=broker.port),
            settings,
            services.store,
            metrics,
            client_id="test-ingest-hostile",
            on_rejected=[failing_hook, told.append],
        )

    def stored() -> float:
        return metrics.value("bondwatch_ingest_messages_total", outcome="stored")

    def refused() -> float:
        return sum(
            metrics.value("bondwatch_ingest_messages_total", outcome="rejected", reason=r)
            for r in {reason for _, _, reason in bad}
        )

    now = utc_now()
    bad = hostile(now)
    caplog.set_level(logging.WARNING, logger="server.ingest")
    first = ingest()
    task = asyncio.create_task(first.run())
    try:
        await asyncio.wait_for(first.connected.wait(), 10)
        async with aiomqtt.Client(broker.host, broker.port, identifier="test-hostile") as pub:
            for n, (topic, payload, _) in enumerate(bad, start=1):
                ts = now - timedelta(seconds=600 - n)
                await pub.publish(topics.position(GOOD), raw(body(GOOD, n, ts)), qos=1)
                await pub.publish(topic, payload, qos=1)
                await pub.publish(topics.position(BAD), raw(body(BAD, n, ts)), qos=1)
        await wait_for(lambda: stored() >= 2 * len(bad) and refused() >= len(bad))
        await wait_for(lambda: DeadLetters(services.store.engine).count() >= len(bad))
        await asyncio.sleep(0.5)  # the last acknowledgements reach the broker
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    # every valid message stored, of both nodes; the 2099 fix and the others never
    assert [p["seq"] for p in services.store.track(GOOD, None, None)] == list(
        range(1, len(bad) + 1)
    )
    assert [p["seq"] for p in services.store.track(BAD, None, None)] == list(range(1, len(bad) + 1))
    assert services.store.message_count() == 2 * len(bad)
    # counted by channel and reason
    expected = Counter((_channel(topic), reason) for topic, _, reason in bad)
    for (channel, reason), count in expected.items():
        assert (
            metrics.value("bondwatch_ingest_rejected_total", channel=channel, reason=reason)
            == count
        ), (channel, reason)
    # kept as dead letters, raw bytes cut
    letters = DeadLetters(services.store.engine).list(limit=1000)
    assert Counter(d["reason"] for d in letters) == Counter(reason for _, _, reason in bad)
    deep = next(d for d in letters if d["reason"] == "too_large" and d["size"] == 60_000)
    assert deep["truncated"] and base64.b64decode(deep["raw_base64"]) == b"[" * RAW_BYTES
    assert deep["node_id"] == BAD and deep["channel"] == "position" and deep["kind"] == "truck"
    not_utf8 = next(d for d in letters if d["reason"] == "not_utf8")
    assert "\\xff" in not_utf8["raw_text"]
    ahead = next(d for d in letters if d["reason"] == "clock_ahead")
    assert ahead["device_ts"] == datetime(2099, 1, 1, tzinfo=UTC)
    # told to the hooks, the broken one notwithstanding
    assert Counter(r.reason for r in told) == Counter(reason for _, _, reason in bad)
    clock = next(r for r in told if r.reason == "clock_ahead")
    assert clock.node_id == BAD and clock.kind == "truck" and clock.channel == "position"
    assert clock.device_ts == datetime(2099, 1, 1, tzinfo=UTC)
    assert now - timedelta(seconds=5) < clock.received_at < utc_now()
    # logged once per node and reason (and the broken hook once)
    refusals = [r for r in caplog.records if r.getMessage().startswith("refused a message")]
    pairs = {(_node(topic), reason) for topic, _, reason in bad}
    assert len(refusals) == len(pairs)
    hook_lines = [r for r in caplog.records if "on_rejected hook" in r.getMessage()]
    assert len(hook_lines) == 1

    # The server reconnects its persistent session: nothing is delivered again.
    second = ingest()
    task = asyncio.create_task(second.run())
    try:
        await asyncio.wait_for(second.connected.wait(), 10)
        async with aiomqtt.Client(broker.host, broker.port, identifier="test-hostile") as pub:
            marker = raw(body(GOOD, 10_000, now - timedelta(seconds=1)))
            await pub.publish(topics.position(GOOD), marker, qos=1)
        await wait_for(lambda: stored() >= 2 * len(bad) + 1)
        await asyncio.sleep(0.5)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert refused() == len(bad)
    assert DeadLetters(services.store.engine).count() == len(bad)
    assert metrics.value("bondwatch_ingest_messages_total", outcome="duplicate") == 0


async def test_a_packet_over_the_brokers_limit_never_reaches_the_server(
    own_broker: Any, services: Any
) -> None:
    """50,000 `systems` (200 KB) or a 100,000-deep array: the broker disconnects the
    publisher; the server's session and the other nodes are not touched."""
    broker = own_broker
    metrics = Metrics()
    first = Ingest(
        BrokerSettings(host=broker.host, port=broker.port),
        IngestSettings(batch_wait_ms=5),
        services.store,
        metrics,
        client_id="test-ingest-packet",
    )
    task = asyncio.create_task(first.run())
    now = utc_now()
    try:
        await asyncio.wait_for(first.connected.wait(), 10)
        huge = [
            raw(body(BAD, 1, now, systems=["GPS"] * 50_000)),
            b"[" * 100_000 + b"]" * 100_000,
        ]
        for n, payload in enumerate(huge):
            with pytest.raises((aiomqtt.MqttError, TimeoutError)):
                await _publish_both(broker, f"test-huge-{n}", payload, raw(body(BAD, 2, now)))
        async with aiomqtt.Client(broker.host, broker.port, identifier="test-good") as pub:
            await pub.publish(topics.position(GOOD), raw(body(GOOD, 1, now)), qos=1)
        await wait_for(
            lambda: metrics.value("bondwatch_ingest_messages_total", outcome="stored") >= 1
        )
        assert first.connected.is_set()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert [p["node_id"] for p in services.store.latest_positions()] == [GOOD]
    assert DeadLetters(services.store.engine).count() == 0


def test_a_failure_inside_validation_is_an_internal_refusal(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A bug on the way (here: the decoder raising what it never should) refuses the
    message as `internal`, with its traceback logged, and raises nothing."""
    import server.ingest as ingest_module

    def broken(*_: Any, **__: Any) -> Any:
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(ingest_module, "decode_edge", broken)
    caplog.set_level(logging.ERROR, logger="server.ingest")
    outcome = validate(topics.position(GOOD), raw(body(GOOD, 1, utc_now())))
    assert isinstance(outcome, Rejected)
    assert (outcome.reason, outcome.node_id, outcome.channel) == ("internal", GOOD, "position")
    assert outcome.detail.startswith("RecursionError")
    assert any(r.exc_info for r in caplog.records)


def test_clock_skew_is_configurable() -> None:
    now = utc_now()
    ahead = raw(body(GOOD, 1, now + timedelta(seconds=100)))
    assert not isinstance(validate(topics.position(GOOD), ahead, now), Rejected)
    outcome = validate(topics.position(GOOD), ahead, now, timedelta(seconds=60))
    assert isinstance(outcome, Rejected) and outcome.reason == "clock_ahead"
    assert outcome.device_ts == datetime.fromisoformat(format_ts(now + timedelta(seconds=100)))


async def _publish_both(broker: Any, identifier: str, first: bytes, then: bytes) -> None:
    async with (
        asyncio.timeout(5),
        aiomqtt.Client(broker.host, broker.port, identifier=identifier) as pub,
    ):
        await pub.publish(topics.position(BAD), first, qos=1)
        await pub.publish(topics.position(BAD), then, qos=1)


def _channel(topic: str) -> str:
    try:
        return topics.parse(topic).channel
    except topics.TopicError:
        return "unknown"


def _node(topic: str) -> str | None:
    try:
        return topics.parse(topic).node_id
    except topics.TopicError:
        return None

"""`contract.mqtt_receive` against a real broker: paho's own receiving and publishing
behaviour kept, messages handed straight to a callback, paho versions not checked left
alone."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Iterator

import aiomqtt
import paho.mqtt
import paho.mqtt.client as paho_client
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from contract import mqtt_receive
from contract.broker import BrokerSettings
from contract.mqtt_client import make_client
from devtools.broker import MosquittoBroker


@pytest.fixture
def restore() -> Iterator[None]:
    """Leave paho as the rest of the run has it (installed by every make_client)."""
    was = mqtt_receive.installed()
    yield
    if was:
        mqtt_receive.install()
    else:
        mqtt_receive.uninstall()


def _exchange(broker: MosquittoBroker) -> tuple[list[tuple[str, bytes, int]], list[str], bool]:
    """A paho client (its own network thread) publishes three messages at QoS 1 to
    itself and waits for each PUBACK; one topic has a per-topic callback."""
    plain: list[tuple[str, bytes, int]] = []
    filtered: list[str] = []
    received = threading.Event()
    client = paho_client.Client(CallbackAPIVersion.VERSION2, client_id=f"t-{uuid.uuid4().hex}")

    def on_message(_c: object, _u: object, message: paho_client.MQTTMessage) -> None:
        plain.append((message.topic, bytes(message.payload), message.qos))
        if len(plain) + len(filtered) == 3:
            received.set()

    def on_special(_c: object, _u: object, message: paho_client.MQTTMessage) -> None:
        filtered.append(message.topic)
        if len(plain) + len(filtered) == 3:
            received.set()

    client.on_message = on_message
    client.message_callback_add("rx/special/#", on_special)
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        client.subscribe("rx/#", qos=1)
        time.sleep(0.3)
        infos = [
            client.publish("rx/a", b"one", qos=1),
            client.publish("rx/special/b", b"two", qos=1),
            client.publish("rx/车", "三".encode(), qos=1),
        ]
        for info in infos:
            info.wait_for_publish(10)
        published = all(info.is_published() for info in infos)
        assert received.wait(10)
    finally:
        client.loop_stop()
        client.disconnect()
    return sorted(plain), filtered, published


def test_paho_receives_and_publishes_as_before(broker: MosquittoBroker, restore: None) -> None:
    mqtt_receive.uninstall()
    expected = _exchange(broker)
    assert mqtt_receive.install() and mqtt_receive.installed()
    got = _exchange(broker)
    assert got == expected
    assert got == (
        [("rx/a", b"one", 1), ("rx/车", "三".encode(), 1)],
        ["rx/special/b"],
        True,
    )


def test_the_condition_is_made_only_when_used(restore: None) -> None:
    mqtt_receive.install()
    info = paho_client.MQTTMessageInfo(7)
    assert info._condition._condition is None  # type: ignore[attr-defined]
    done = threading.Thread(target=info.wait_for_publish, args=(5,))
    done.start()
    time.sleep(0.05)
    info._set_as_published()
    done.join(5)
    assert not done.is_alive() and info.is_published()
    assert isinstance(info._condition._condition, threading.Condition)  # type: ignore[attr-defined]


def test_an_unchecked_paho_version_is_left_alone(
    restore: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    mqtt_receive.uninstall()
    monkeypatch.setattr(paho.mqtt, "__version__", "2.3.0")
    assert not mqtt_receive.install()
    assert not mqtt_receive.installed()


async def test_deliver_to_hands_messages_over_and_the_iterator_reports_the_end(
    own_broker: MosquittoBroker,
) -> None:
    settings = BrokerSettings(host=own_broker.host, port=own_broker.port)
    got: list[tuple[str, bytes, int]] = []
    client = make_client(settings, f"rx-{uuid.uuid4().hex[:8]}")
    arrived = asyncio.Event()

    def take(m: paho_client.MQTTMessage) -> None:
        got.append((m.topic, bytes(m.payload), m.mid))
        if len(got) == 50:
            arrived.set()

    mqtt_receive.deliver_to(client, take)
    async with client:
        await client.subscribe("rx/#", qos=1)
        async with make_client(settings, f"tx-{uuid.uuid4().hex[:8]}") as sender:
            for n in range(50):
                await sender.publish(f"rx/{n}", str(n).encode(), qos=1)
        await asyncio.wait_for(arrived.wait(), 10)
        assert [(t, p) for t, p, _ in got] == [(f"rx/{n}", str(n).encode()) for n in range(50)]
        assert all(mid > 0 for _, _, mid in got)  # QoS 1: each has its packet id
        assert len(client.messages) == 0  # aiomqtt's own queue was bypassed
        own_broker.stop()
        with pytest.raises(aiomqtt.MqttError):
            await asyncio.wait_for(_until_lost(client), 10)


async def _until_lost(client: aiomqtt.Client) -> None:
    async for _ in client.messages:
        pass


async def test_a_burst_read_in_large_chunks_arrives_whole_and_in_order(
    broker: MosquittoBroker,
) -> None:
    """Packets of every size straddle the read buffer's ends; a large one spans several
    reads; the last packet of a burst is handed over without more bytes arriving."""
    settings = BrokerSettings(host=broker.host, port=broker.port)
    sizes = [1, 2, 127, 128, 16_383, 16_384, 40_000, *range(1, 30_000, 997)] * 3
    sent = [(f"burst/{n}", bytes([n % 251]) * size) for n, size in enumerate(sizes)]
    got: list[tuple[str, bytes]] = []
    arrived = asyncio.Event()

    def take(m: paho_client.MQTTMessage) -> None:
        got.append((m.topic, bytes(m.payload)))
        if len(got) == len(sent):
            arrived.set()

    identifier = f"rx-{uuid.uuid4().hex[:8]}"
    async with make_client(settings, identifier) as client:  # the session, subscribed
        await client.subscribe("burst/#", qos=1)
    async with make_client(settings, f"tx-{uuid.uuid4().hex[:8]}") as sender:
        for topic, payload in sent:  # queued by the broker: one burst at the connect
            await sender.publish(topic, payload, qos=1)
    client = make_client(settings, identifier)
    mqtt_receive.deliver_to(client, take)
    async with client:
        await asyncio.wait_for(arrived.wait(), 30)
    assert mqtt_receive.installed()
    assert got == sent


async def _receive_unacknowledged(
    settings: BrokerSettings, identifier: str, count: int, ack: bool
) -> list[int]:
    """Connect with manual acknowledgement, take `count` messages (their payloads as
    numbers) and, with `ack`, acknowledge them all at once with `acknowledge`."""
    got: list[tuple[int, int, int]] = []
    arrived = asyncio.Event()

    def take(m: paho_client.MQTTMessage) -> None:
        got.append((int(m.payload), m.mid, m.qos))
        if len(got) == count:
            arrived.set()

    client = make_client(settings, identifier)
    mqtt_receive.deliver_to(client, take)
    client._client.manual_ack_set(True)
    async with client:
        await client.subscribe("acks/#", qos=1)
        await asyncio.wait_for(arrived.wait(), 10)
        if ack:
            mqtt_receive.acknowledge(client._client, [(mid, qos) for _, mid, qos in got])
        await client.publish("acks-done", b"", qos=1)  # written after the PUBACKs
    return [n for n, _, _ in got]


async def test_acknowledge_pubacks_a_batch_that_the_broker_then_forgets(
    broker: MosquittoBroker,
) -> None:
    settings = BrokerSettings(host=broker.host, port=broker.port)
    identifier = f"ack-{uuid.uuid4().hex[:8]}"
    async with make_client(settings, identifier) as client:
        await client.subscribe("acks/#", qos=1)
    async with make_client(settings, f"tx-{uuid.uuid4().hex[:8]}") as sender:
        for n in range(150):  # within what Mosquitto sends again at once (its in-flight limit)
            await sender.publish(f"acks/{n % 7}", str(n).encode(), qos=1)
    # Not acknowledged: the broker sends them all again on the next connection.
    assert await _receive_unacknowledged(settings, identifier, 150, ack=False) == list(range(150))
    assert await _receive_unacknowledged(settings, identifier, 150, ack=True) == list(range(150))
    async with make_client(settings, f"tx-{uuid.uuid4().hex[:8]}") as sender:
        await sender.publish("acks/last", b"150", qos=1)
    # Acknowledged: only what came after is delivered.
    assert await _receive_unacknowledged(settings, identifier, 1, ack=True) == [150]

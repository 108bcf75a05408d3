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

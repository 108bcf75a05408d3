"""The bench's load generator (`bench.mqtt_load`) against a real broker: every message
arrives once, in order, byte for byte; a refused connection is an error."""

from __future__ import annotations

import threading
import uuid

import paho.mqtt.client as paho_client
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from bench import mqtt_load
from devtools.broker import MosquittoBroker


def test_packets_are_mqtt_3_1_1() -> None:
    assert mqtt_load.publish_packet("a/b", b"xy", 7) == b"\x32\x09\x00\x03a/b\x00\x07xy"
    long = mqtt_load.publish_packet("t", b"x" * 200, 1)
    assert long[:3] == b"\x32\xcd\x01"  # remaining length 2 + 1 + 2 + 200 = 205: two bytes
    assert mqtt_load.connect_packet("c1")[:2] == b"\x10\x0e"


def test_every_message_arrives_once_in_order(broker: MosquittoBroker) -> None:
    topic = f"load/{uuid.uuid4().hex[:8]}"
    messages = [(topic, f"m-{n}-车".encode()) for n in range(3000)]
    got: list[bytes] = []
    done = threading.Event()
    subscribed = threading.Event()
    sub = paho_client.Client(CallbackAPIVersion.VERSION2, client_id=f"sub-{uuid.uuid4().hex}")

    def on_message(_c: object, _u: object, message: paho_client.MQTTMessage) -> None:
        got.append(bytes(message.payload))
        if len(got) == len(messages):
            done.set()

    sub.on_message = on_message
    sub.on_subscribe = lambda *_: subscribed.set()
    sub.connect(broker.host, broker.port)
    sub.loop_start()
    try:
        sub.subscribe(topic, qos=1)
        assert subscribed.wait(10)
        taken = mqtt_load.publish(broker.host, broker.port, "load-1", messages, rate=20_000)
        assert done.wait(30)
    finally:
        sub.loop_stop()
        sub.disconnect()
    assert got == [p for _, p in messages]
    assert taken >= len(messages) / 20_000 * 0.9  # paced, not faster than asked


def test_a_broker_that_is_not_there_is_an_error() -> None:
    from devtools.broker import free_port

    with pytest.raises(ConnectionRefusedError):
        mqtt_load.publish("127.0.0.1", free_port(), "load-2", [("t", b"x")], timeout_s=2)

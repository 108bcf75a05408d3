"""`contract.mqtt_properties` must behave exactly as paho's own `Properties`: the same
bytes packed, the same attributes unpacked, the same refusals."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from paho.mqtt.exception import MQTTException
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from contract import mqtt_properties

# One value for every property, on a packet type it applies to.
VALUES: list[tuple[int, str, Any]] = [
    (PacketTypes.PUBLISH, "PayloadFormatIndicator", 1),
    (PacketTypes.PUBLISH, "MessageExpiryInterval", 3600),
    (PacketTypes.PUBLISH, "ContentType", "application/json"),
    (PacketTypes.PUBLISH, "ResponseTopic", "bw/v1/reply/车-1"),
    (PacketTypes.PUBLISH, "CorrelationData", b"\x00\x01\xff"),
    (PacketTypes.PUBLISH, "SubscriptionIdentifier", 268_435_455),
    (PacketTypes.PUBLISH, "TopicAlias", 7),
    (PacketTypes.PUBLISH, "UserProperty", ("node", "TRK-1")),
    (PacketTypes.CONNECT, "SessionExpiryInterval", 2_592_000),
    (PacketTypes.CONNECT, "ReceiveMaximum", 2000),
    (PacketTypes.CONNECT, "TopicAliasMaximum", 10),
    (PacketTypes.CONNECT, "MaximumPacketSize", 1_048_576),
    (PacketTypes.CONNECT, "RequestProblemInformation", 1),
    (PacketTypes.CONNECT, "RequestResponseInformation", 0),
    (PacketTypes.CONNECT, "AuthenticationMethod", "SCRAM-SHA-256"),
    (PacketTypes.CONNECT, "AuthenticationData", b"nonce"),
    (PacketTypes.CONNACK, "AssignedClientIdentifier", "auto-1"),
    (PacketTypes.CONNACK, "ServerKeepAlive", 60),
    (PacketTypes.CONNACK, "ResponseInformation", "bw/"),
    (PacketTypes.CONNACK, "ServerReference", "broker-2:1883"),
    (PacketTypes.CONNACK, "MaximumQoS", 1),
    (PacketTypes.CONNACK, "RetainAvailable", 1),
    (PacketTypes.CONNACK, "WildcardSubscriptionAvailable", 1),
    (PacketTypes.CONNACK, "SubscriptionIdentifierAvailable", 0),
    (PacketTypes.CONNACK, "SharedSubscriptionAvailable", 1),
    (PacketTypes.PUBACK, "ReasonString", "quota exceeded"),
    (PacketTypes.WILLMESSAGE, "WillDelayInterval", 5),
]


@pytest.fixture
def both() -> Iterator[None]:
    """Leave paho as the rest of the run has it (installed by every make_client)."""
    was = mqtt_properties.installed()
    yield
    if was:
        mqtt_properties.install()
    else:
        mqtt_properties.uninstall()


def built(packet_type: int, values: list[tuple[str, Any]]) -> Properties:
    props = Properties(packet_type)
    for name, value in values:
        setattr(props, name, value)
    return props


def observe(packet_type: int, values: list[tuple[str, Any]]) -> tuple[Any, ...]:
    """Everything a caller can see: packed bytes, unpacked attributes and length, text."""
    props = built(packet_type, values)
    packed = props.pack()
    again, length = Properties(packet_type).unpack(packed)
    return packed, length, again.json(), str(again), again.isEmpty()


def cases() -> list[tuple[int, list[tuple[str, Any]]]]:
    by_type: dict[int, list[tuple[str, Any]]] = {}
    for packet_type, name, value in VALUES:
        by_type.setdefault(packet_type, []).append((name, value))
    singles = [(t, [(n, v)]) for t, n, v in VALUES]
    repeated = [(PacketTypes.PUBLISH, [("UserProperty", ("a", "1")), ("UserProperty", ("b", "2"))])]
    return [(PacketTypes.PUBLISH, []), *singles, *by_type.items(), *repeated]


def test_every_property_packs_and_unpacks_as_paho_does(both: None) -> None:
    mqtt_properties.uninstall()
    expected = [observe(t, values) for t, values in cases()]
    assert mqtt_properties.install()
    assert mqtt_properties.installed()
    got = [observe(t, values) for t, values in cases()]
    assert got == expected
    assert expected[0][:2] == (b"\x00", 1)  # the empty section: answered at once
    assert len(expected) == 1 + len(VALUES) + 5 + 1  # empty, singles, by type, repeated


def test_every_property_of_mqtt_5_is_compared() -> None:
    names = {name.replace(" ", "") for name in Properties(PacketTypes.PUBLISH).names}
    assert {name for _, name, _ in VALUES} == names


def test_the_instances_share_the_tables_and_keep_their_own_values(both: None) -> None:
    mqtt_properties.install()
    a, b = Properties(PacketTypes.PUBLISH), Properties(PacketTypes.CONNECT)
    assert a.names is b.names and a.properties is b.properties and a.types is b.types
    a.ContentType = "text/plain"
    assert not hasattr(b, "ContentType")
    a.clear()
    assert a.isEmpty() and a.packetType == PacketTypes.PUBLISH
    reused, _ = a.unpack(built(PacketTypes.PUBLISH, [("TopicAlias", 3)]).pack())
    assert reused.TopicAlias == 3 and not hasattr(reused, "ContentType")
    reused.unpack(b"\x00")
    assert reused.isEmpty()


@pytest.mark.parametrize(
    ("packet_type", "name", "value", "message"),
    [
        (PacketTypes.PUBLISH, "NoSuchProperty", 1, "Property name must be one of"),
        (PacketTypes.PUBLISH, "SessionExpiryInterval", 1, "does not apply to packet type"),
        (PacketTypes.CONNECT, "ReceiveMaximum", 0, "range 1-65535"),
        (PacketTypes.PUBLISH, "PayloadFormatIndicator", 2, "must be 0 or 1"),
    ],
)
def test_refusals_are_paho_s(
    both: None, packet_type: int, name: str, value: Any, message: str
) -> None:
    mqtt_properties.install()
    props = Properties(packet_type)
    with pytest.raises(MQTTException, match=message):
        setattr(props, name, value)


def test_a_repeated_single_property_is_refused_on_unpack(both: None) -> None:
    mqtt_properties.install()
    twice = b"\x06" + b"\x23\x00\x01" + b"\x23\x00\x02"  # Topic Alias 1, then 2
    with pytest.raises(MQTTException, match="must not exist more than once"):
        Properties(PacketTypes.PUBLISH).unpack(twice)

"""Build an aiomqtt client from `BrokerSettings` — the one place edge and server connect.

aiomqtt 2.x wraps paho-mqtt 2.x and leaves reconnecting to the caller (TRAPS.md).
Sessions are persistent: MQTT 5 with clean start off and a session expiry (3.1.1: clean
session off), so QoS 1 messages queued while a client is away are kept by the broker.
"""

from __future__ import annotations

import socket
import ssl
from typing import Any

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from contract.broker import BrokerSettings
from contract.mqtt_properties import install as _cheaper_properties
from contract.mqtt_receive import install as _cheaper_receiving

#: How long the broker keeps a disconnected client's session and queued messages.
SESSION_EXPIRY_S = 30 * 24 * 3600

#: Every packet is sent at once. paho leaves Nagle's algorithm on, and then a small
#: packet (a gate command, a PUBACK) written while the one before it is unacknowledged
#: waits for that ACK, which Linux delays by up to 40 ms: measured on the bench, one
#: passage in ten lost 20–40 ms on the way to the gate worker or back (the broker's
#: side is `set_tcp_nodelay` in config/mosquitto/conf.d/bondwatch.conf).
NO_DELAY = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]


def make_client(
    settings: BrokerSettings,
    identifier: str,
    *,
    will: aiomqtt.Will | None = None,
    receive_maximum: int | None = None,
    **extra: Any,
) -> aiomqtt.Client:
    """A client with a persistent session named `identifier` (unless settings override it)."""
    _cheaper_properties()  # paho's MQTT 5 properties, at half the cost per message
    _cheaper_receiving()  # no Condition nor topic-tree walk per received message
    tls_context = None
    if settings.tls:
        tls_context = ssl.create_default_context(
            cafile=str(settings.ca_file) if settings.ca_file else None
        )
        if settings.cert_file is not None:
            tls_context.load_cert_chain(
                str(settings.cert_file), str(settings.key_file) if settings.key_file else None
            )
    client_id = settings.client_id or identifier
    extra.setdefault("socket_options", NO_DELAY)
    if settings.protocol == "5":
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = SESSION_EXPIRY_S
        if receive_maximum is not None:
            props.ReceiveMaximum = receive_maximum
        return aiomqtt.Client(
            settings.host,
            settings.port,
            username=settings.username,
            password=settings.password(),
            identifier=client_id,
            protocol=aiomqtt.ProtocolVersion.V5,
            clean_start=False,
            properties=props,
            keepalive=settings.keepalive_s,
            will=will,
            tls_context=tls_context,
            **extra,
        )
    return aiomqtt.Client(
        settings.host,
        settings.port,
        username=settings.username,
        password=settings.password(),
        identifier=client_id,
        protocol=aiomqtt.ProtocolVersion.V311,
        clean_session=False,
        keepalive=settings.keepalive_s,
        will=will,
        tls_context=tls_context,
        **extra,
    )

"""An MQTT client for broker tests that records everything the broker answers:
CONNACK, each PUBACK's and SUBACK's reason code (MQTT 5), messages, disconnects."""

from __future__ import annotations

import ssl
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

#: MQTT 5 reason code of a publish the broker's ACL refused (PUBACK).
NOT_AUTHORIZED = 0x87


class ProbeError(AssertionError):
    """The broker did not answer as a test expected, in time."""


@dataclass
class Credentials:
    """A user name and password, and/or a client certificate and key."""

    username: str | None = None
    password: str | None = None
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None


@dataclass
class Probe:
    host: str
    port: int
    client_id: str
    credentials: Credentials
    connack: int | None = None
    disconnects: list[int] = field(default_factory=list)
    messages: list[tuple[str, bytes]] = field(default_factory=list)
    _acks: dict[int, int] = field(default_factory=dict)
    _cond: threading.Condition = field(default_factory=threading.Condition)
    _client: Any = None

    def connect(self, timeout: float = 5.0) -> int:
        """Connect with a persistent session; the CONNACK reason code (0 = accepted)."""
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=mqtt.MQTTv5
        )
        creds = self.credentials
        if creds.username is not None:
            client.username_pw_set(creds.username, creds.password)
        if creds.ca_file is not None:
            context = ssl.create_default_context(cafile=str(creds.ca_file))
            if creds.cert_file is not None:
                context.load_cert_chain(str(creds.cert_file), str(creds.key_file))
            client.tls_set_context(context)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600
        self._client = client
        try:
            client.connect(self.host, self.port, clean_start=False, properties=props)
        except (OSError, ssl.SSLError):
            self.connack = -1  # refused during the TLS handshake
            return self.connack
        client.loop_start()
        self._wait(lambda: self.connack is not None or bool(self.disconnects), timeout, "CONNACK")
        return self.connack if self.connack is not None else -1

    def _on_connect(self, _c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        with self._cond:
            self.connack = int(reason.value)
            self._cond.notify_all()

    def _on_disconnect(self, _c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        with self._cond:
            self.disconnects.append(int(reason.value))
            self._cond.notify_all()

    def _on_publish(self, _c: Any, _u: Any, mid: int, reason: Any, _p: Any) -> None:
        with self._cond:
            self._acks[mid] = int(reason.value)
            self._cond.notify_all()

    def _on_subscribe(self, _c: Any, _u: Any, mid: int, reasons: Any, _p: Any) -> None:
        with self._cond:
            self._acks[mid] = int(reasons[0].value)
            self._cond.notify_all()

    def _on_message(self, _c: Any, _u: Any, message: Any) -> None:
        with self._cond:
            self.messages.append((message.topic, bytes(message.payload)))
            self._cond.notify_all()

    def _wait(self, done: Any, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not done():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise ProbeError(f"{self.client_id}: no {what} within {timeout} s")
                self._cond.wait(left)

    def publish(self, topic: str, payload: bytes, qos: int = 1, timeout: float = 5.0) -> int:
        """Publish; at QoS 1 the PUBACK's reason code (0 success, 0x87 not authorised)."""
        info = self._client.publish(topic, payload, qos=qos)
        if qos == 0:
            info.wait_for_publish(timeout)
            return 0
        self._wait(lambda: info.mid in self._acks, timeout, f"PUBACK for {topic}")
        return self._acks[info.mid]

    def subscribe(self, topic_filter: str, timeout: float = 5.0) -> int:
        """Subscribe at QoS 1; the SUBACK's reason code (1 = granted QoS 1)."""
        _, mid = self._client.subscribe(topic_filter, qos=1)
        self._wait(lambda: mid in self._acks, timeout, f"SUBACK for {topic_filter}")
        return self._acks[mid]

    def wait_for(self, topic: str, payload: bytes, timeout: float = 5.0) -> None:
        self._wait(lambda: (topic, payload) in self.messages, timeout, f"{topic} {payload!r}")

    @property
    def connected(self) -> bool:
        return self._client is not None and bool(self._client.is_connected())

    def close(self) -> None:
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()

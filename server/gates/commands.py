"""Signing server→edge commands and publishing them to the broker.

`CommandSigner` makes `GateCommand`s and `TruckCommand`s signed with the server's
Ed25519 key (`signing_key_file`), with an expiry and a fresh nonce, addressed to one
node (`contract.signing`). `CommandPublisher` is the server's own MQTT client (its own
client id, persistent session) that sends them at QoS 1 to
`bondwatch/v1/{kind}/{node}/command`; it reconnects with backoff and drops a command
that expired while it waited. The same connection carries the server's retained state
messages (`publish_retained`: the trucks' `declared` lists, `server.declared`).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol, TypeVar

import aiomqtt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from contract import topics
from contract.broker import BrokerSettings
from contract.ids import utc_now
from contract.mqtt_client import make_client
from contract.payloads import GateCommand, SignedCommand, TruckCommand, fit_reasons
from contract.signing import load_private_key, new_command_id, new_nonce, sign
from contract.topics import Kind

log = logging.getLogger(__name__)

C = TypeVar("C", bound=SignedCommand)


class SigningUnavailable(RuntimeError):
    """No signing key is configured: the server cannot send commands."""


class CommandSigner:
    def __init__(self, key: Ed25519PrivateKey | None, ttl_s: float = 30.0) -> None:
        self._key = key
        self.ttl = timedelta(seconds=ttl_s)

    @classmethod
    def from_file(cls, path: Path | None, ttl_s: float = 30.0) -> CommandSigner:
        return cls(load_private_key(path) if path is not None else None, ttl_s)

    def _times(self, now: datetime | None) -> tuple[datetime, datetime]:
        issued = now or utc_now()
        return issued, issued + self.ttl

    def _sign(self, command: C) -> C:
        if self._key is None:
            raise SigningUnavailable("no signing_key_file is configured: commands cannot be signed")
        return sign(command, self._key)

    def gate(
        self,
        node_id: str,
        passage_id: str,
        lane: str,
        action: str,
        reasons: list[str],
        now: datetime | None = None,
    ) -> GateCommand:
        issued, expires = self._times(now)
        return self._sign(
            GateCommand.model_validate(
                {
                    "node_id": node_id,
                    "command_id": new_command_id(),
                    "issued_at": issued,
                    "expires_at": expires,
                    "nonce": new_nonce(),
                    "passage_id": passage_id,
                    "lane": lane,
                    "action": action,
                    "reasons": fit_reasons(reasons),  # within the contract's bounds
                }
            )
        )

    def unseal(
        self,
        node_id: str,
        lock_id: str,
        trip_id: str,
        lock_token: str,
        now: datetime | None = None,
    ) -> TruckCommand:
        issued, expires = self._times(now)
        return self._sign(
            TruckCommand(
                node_id=node_id,
                command_id=new_command_id(),
                issued_at=issued,
                expires_at=expires,
                nonce=new_nonce(),
                action="unseal",
                lock_id=lock_id,
                trip_id=trip_id,
                lock_token=lock_token,
            )
        )


class Publisher(Protocol):
    """Where signed commands go (the broker in production)."""

    def publish(self, kind: Kind, command: SignedCommand) -> None:
        """Queue `command` for its node; returns at once, from any thread."""
        ...


@dataclass(frozen=True, slots=True)
class _Outgoing:
    topic: str
    payload: bytes
    #: a command's id and expiry; None for a retained state message
    command_id: str | None
    expires_at: datetime | None
    retain: bool = False


class CommandPublisher:
    """Publishes queued commands at QoS 1 on the server's own MQTT connection."""

    def __init__(self, broker: BrokerSettings, client_id: str) -> None:
        self._broker = broker
        self._client_id = client_id
        self._queue: asyncio.Queue[_Outgoing] = asyncio.Queue()
        #: retained state messages, the newest per topic, sent when no command waits
        self._retained: dict[str, _Outgoing] = {}
        self._work = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.connected = asyncio.Event()
        self.sent = 0
        #: connections made so far (a retained state is published again on a new one)
        self.connections = 0

    def publish(self, kind: Kind, command: SignedCommand) -> None:
        self._put(
            _Outgoing(
                topics.command(kind, command.node_id),
                command.to_json(),
                command.command_id,
                command.expires_at,
            )
        )

    def publish_retained(self, topic: str, payload: bytes) -> None:
        """Queue a retained QoS 1 message (an empty `payload` clears the topic's). It goes
        out after every waiting command, and replaces one for the same topic not yet sent
        (only the newest state matters): a burst of them never delays a barrier."""
        self._put(_Outgoing(topic, payload, None, None, retain=True))

    def _put(self, item: _Outgoing) -> None:
        loop = self._loop
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if loop is None or running is loop:
            self._enqueue(item)
        else:  # a REST handler's thread: hand over to the publisher's loop
            loop.call_soon_threadsafe(self._enqueue, item)

    def _enqueue(self, item: _Outgoing) -> None:
        if item.retain:
            self._retained.pop(item.topic, None)  # the newest goes to the back
            self._retained[item.topic] = item
        else:
            self._queue.put_nowait(item)
        self._work.set()

    def _take(self) -> _Outgoing | None:
        """The next message: a command first, else the oldest retained state."""
        if not self._queue.empty():
            return self._queue.get_nowait()
        if self._retained:
            return self._retained.pop(next(iter(self._retained)))
        return None

    async def _next(self) -> _Outgoing:
        while True:
            item = self._take()
            if item is not None:
                return item
            self._work.clear()
            await self._work.wait()

    async def run(self) -> None:
        """Connect, reconnecting with backoff, and send until cancelled."""
        self._loop = asyncio.get_running_loop()
        delay = self._broker.reconnect_min_s
        pending: _Outgoing | None = None
        while True:
            try:
                async with make_client(self._broker, self._client_id) as client:
                    self.connections += 1
                    self.connected.set()
                    log.info(
                        "command publisher connected to %s:%d as %s",
                        self._broker.host,
                        self._broker.port,
                        self._client_id,
                    )
                    delay = self._broker.reconnect_min_s
                    while True:
                        pending = pending or await self._next()
                        if pending.expires_at is not None and pending.expires_at <= utc_now():
                            log.warning(
                                "command %s to %s expired before it could be sent",
                                pending.command_id,
                                pending.topic,
                            )
                        else:
                            await client.publish(
                                pending.topic, pending.payload, qos=1, retain=pending.retain
                            )
                            self.sent += 1
                            log.debug("command %s sent on %s", pending.command_id, pending.topic)
                        pending = None
            except aiomqtt.MqttError as err:
                if self.connected.is_set():
                    log.warning("command publisher lost the broker: %s", err)
                self.connected.clear()
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._broker.reconnect_max_s)

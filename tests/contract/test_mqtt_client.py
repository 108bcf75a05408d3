"""`contract.mqtt_client.make_client` against a real broker: the socket it connects sends
each packet at once."""

from __future__ import annotations

import socket
import uuid

from contract.broker import BrokerSettings
from contract.mqtt_client import make_client
from devtools.broker import MosquittoBroker


async def test_connections_send_each_packet_at_once(broker: MosquittoBroker) -> None:
    """Nagle's algorithm off (paho leaves it on): a small packet written while the one
    before is unacknowledged would otherwise wait up to 40 ms for a delayed ACK."""
    settings = BrokerSettings(host=broker.host, port=broker.port)
    for protocol in ("5", "3.1.1"):
        client = make_client(
            settings.model_copy(update={"protocol": protocol}), f"t-nodelay-{uuid.uuid4().hex}"
        )
        async with client:
            sock = client._client.socket()
            assert isinstance(sock, socket.socket)
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0, protocol

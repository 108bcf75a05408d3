"""A `bondwatch-jt808` gateway in the test's event loop, with its registry and files."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from contract.cellular_registry import CellularRegistry
from contract.signing import generate_private_key, private_key_to_pem, public_key_to_pem
from devices.elock import profile
from devices.elock.block import BondWatchBlock
from devices.elock.bodies import Authentication, Body, Location, PlatformResponse, RawBody
from devices.elock.codec import Message, decode, encode
from devices.elock.framing import FrameSplitter
from devices.elock.header import Header
from devices.elock.tlv import Extra
from devtools.broker import MosquittoBroker
from edge.jt808.auth import auth_code
from edge.jt808.config import GatewayConfig
from edge.jt808.gateway import Jt808Gateway
from firmware_stubs.jt808_terminal import Jt808Terminal
from tests.edge.conftest import settings_for

LOCK_PHONE, LOCK2_PHONE, TRACKER_PHONE = "13800000101", "13800000102", "13800000201"
NODE, NODE2 = "TRK-CELL-1", "TRK-CELL-2"
LOCK_ID, LOCK2_ID = "EL-CELL-1", "EL-CELL-2"
REGISTRY = {
    "devices": [
        {"phone": LOCK_PHONE, "terminal_id": "EL00101", "node_id": NODE, "lock_id": LOCK_ID},
        {"phone": LOCK2_PHONE, "node_id": NODE2, "lock_id": LOCK2_ID},
        {"phone": TRACKER_PHONE, "node_id": NODE2, "kind": "tracker"},
    ]
}


@dataclass
class RunningGateway:
    gateway: Jt808Gateway
    task: asyncio.Task[None]
    private_key: Path

    @property
    def port(self) -> int:
        return self.gateway.ports["tcp"]

    def terminal(
        self, phone: str = LOCK_PHONE, terminal_id: str = "EL00101", **kw: Any
    ) -> Jt808Terminal:
        return Jt808Terminal("127.0.0.1", self.port, phone, terminal_id, **kw)

    async def stop(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


GatewayFactory = Callable[..., Awaitable[RunningGateway]]


@pytest.fixture
async def start_gateway(
    own_broker: MosquittoBroker, tmp_path: Path
) -> AsyncIterator[GatewayFactory]:
    """Start a gateway (again, on the same files) with config overrides."""
    key = generate_private_key()
    (tmp_path / "server.pem").write_bytes(private_key_to_pem(key))
    (tmp_path / "server.pub").write_bytes(public_key_to_pem(key.public_key()))
    (tmp_path / "auth.secret").write_text("jt808-test-secret-0123456789\n")
    running: list[RunningGateway] = []

    async def start(registry: dict[str, Any] | None = None, **over: Any) -> RunningGateway:
        fields: dict[str, Any] = {
            "gateway_id": "jt808-gw-test",
            "broker": settings_for(own_broker).model_dump(),
            "store": {
                "path": tmp_path / "store.sqlite3",
                "nonce_path": tmp_path / "nonces.sqlite3",
                "ack_timeout_s": 1.0,
            },
            "server_public_key": tmp_path / "server.pub",
            "registry": tmp_path / "registry.yaml",
            "auth_secret_file": tmp_path / "auth.secret",
            "listen": {"host": "127.0.0.1", "port": 0},
            "downlink": {"ack_timeout_s": 0.5, "retries": 1},
        }
        for key_name, value in over.items():
            if isinstance(value, dict) and isinstance(fields.get(key_name), dict):
                fields[key_name] = {**fields[key_name], **value}
            else:
                fields[key_name] = value
        config = GatewayConfig.model_validate(fields)
        gateway = Jt808Gateway(config, CellularRegistry.model_validate(registry or REGISTRY))
        task = asyncio.create_task(gateway.run())
        await asyncio.wait_for(gateway.ready.wait(), 10)
        await wait_until(lambda: gateway.uplink.connected, 10)
        handle = RunningGateway(gateway, task, tmp_path / "server.pem")
        running.append(handle)
        return handle

    yield start
    for handle in running:
        await handle.stop()


async def wait_until(check: Callable[[], Any], within: float = 10.0) -> None:
    async with asyncio.timeout(within):
        while not check():  # noqa: ASYNC110 - polls state that has no event to wait on
            await asyncio.sleep(0.02)


def lock_report(
    counter: int,
    *,
    lock_id: str = LOCK_ID,
    state: profile.LockState = "sealed",
    event: profile.LockEventName = "status",
    lat: float = 22.5,
    lon: float = 113.9,
    second: int | None = None,
) -> Location:
    """A BondWatch lock's report (the MAC is not checked by the gateway: any 16 bytes)."""
    block = BondWatchBlock(
        lock_id=lock_id,
        state=profile.STATE_CODES[state],
        event=profile.EVENT_CODES[event],
        battery_pct=90,
        battery_mv=4100,
        report_counter=counter,
        report_mac=counter.to_bytes(16, "big"),
    )
    return Location(
        alarm=0,
        status=(1 << 1) | (1 << 19),
        lat=lat,
        lon=lon,
        alt_m=12,
        speed_kmh=36.0,
        course_deg=90,
        time=datetime(
            2026, 12, 1, 8, 0, second if second is not None else counter % 60, tzinfo=UTC
        ),
        extras=(Extra(0x31, bytes([9])), Extra(profile.TLV_BONDWATCH, block.encode())),
    )


class Raw:
    """A device written frame by frame, reading the gateway's answers."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.splitter = FrameSplitter()
        self.serial = 0
        self.received: list[bytes] = []

    @classmethod
    async def connect(cls, port: int) -> Raw:
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    def frame(self, body: Body, phone: str = LOCK_PHONE, serial: int | None = None) -> bytes:
        self.serial += 1
        header = Header(body.MSG_ID, phone, self.serial if serial is None else serial)
        return encode(header, body)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def answer(self, within: float = 5.0) -> Message:
        async with asyncio.timeout(within):
            while not self.received:
                chunk = await self.reader.read(4096)
                if not chunk:
                    raise EOFError("closed by the gateway")
                self.received.extend(self.splitter.feed(chunk))
        return decode(self.received.pop(0))

    async def closed(self, within: float = 5.0) -> bool:
        async with asyncio.timeout(within):
            while await self.reader.read(4096):
                pass
        return True

    def fragments(self, msg_id: int, body: bytes, size: int = 100) -> list[bytes]:
        """`body` as sub-packages of `size` bytes, on the next serials."""
        parts = [body[i : i + size] for i in range(0, len(body), size)]
        first = self.serial + 1
        self.serial += len(parts)
        return [
            encode(
                Header(msg_id, LOCK_PHONE, first + i, packet_total=len(parts), packet_index=i + 1),
                RawBody(msg_id, part),
            )
            for i, part in enumerate(parts)
        ]

    async def login(self, gateway: Jt808Gateway, phone: str = LOCK_PHONE) -> None:
        code = auth_code(gateway.secret, phone)
        await self.send(self.frame(Authentication(code), phone))
        reply = (await self.answer()).body
        assert isinstance(reply, PlatformResponse) and reply.result == 0

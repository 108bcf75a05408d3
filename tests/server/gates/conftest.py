"""A server with a signing key and lock secrets, its GateService sending commands into a
list, and helpers to feed edge messages through the store as the ingest does."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from fastapi.testclient import TestClient

from contract.ids import format_ts, utc_now
from contract.payloads import EdgeMessage, SignedCommand, decode_edge
from contract.signing import generate_private_key, private_key_to_pem
from contract.topics import Kind
from server.app import build_services, create_app
from server.config import ServerConfig, StorageSettings
from server.gates.commands import CommandSigner
from server.gates.config import GatesSettings
from server.gates.service import GateService
from server.services import Services
from server.store.database import IncomingMessage
from tests.server.auth.session import login_as
from tests.server.conftest import demo_geography

LOCK_SECRET = "lock-secret-EL-1-0123456789"


@dataclass
class Recorder:
    """A `Publisher` that keeps what it was given."""

    sent: list[tuple[Kind, SignedCommand]] = field(default_factory=list)

    def publish(self, kind: Kind, command: SignedCommand) -> None:
        self.sent.append((kind, command))


@dataclass
class GateWorld:
    services: Services
    gates: GateService
    recorder: Recorder
    public_key: Ed25519PublicKey
    seq: dict[str, int] = field(default_factory=dict)

    def feed(self, channel: str, node_id: str, ts: datetime, **fields: Any) -> EdgeMessage:
        """Store an edge message as the ingest would and return it."""
        seq = self.seq.get(node_id, 0) + 1
        self.seq[node_id] = seq
        raw = json.dumps({"node_id": node_id, "seq": seq, "ts": format_ts(ts), **fields})
        message = decode_edge(channel, raw)
        fresh = self.services.store.store_messages(
            [IncomingMessage(channel, message, raw, utc_now())]
        )
        assert len(fresh) == 1
        return message


def passage_fields(
    passage_id: str,
    containers: list[str] | None = None,
    plate: str | None = "粤A·D3K21",
    lane: str = "L1",
    **over: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "passage_id": passage_id,
        "lane": lane,
        "direction": "in",
        "containers": [
            {"number": n, "confidence": 0.98, "check_digit_ok": True, "needs_review": False}
            for n in (["CSQU3054383"] if containers is None else containers)
        ],
        "plate": ({"text": plate, "confidence": 0.95, "needs_review": False} if plate else None),
        "images": [f"gate://{passage_id}/front.jpg"],
    }
    body.update(over)
    return body


@pytest.fixture
def gate_world(tmp_path: Path) -> Iterator[GateWorld]:
    key = generate_private_key()
    key_file = tmp_path / "server.pem"
    key_file.write_bytes(private_key_to_pem(key))
    secrets = tmp_path / "lock-secrets.yaml"
    secrets.write_text(f"EL-1: {LOCK_SECRET}\n", encoding="utf-8")
    config = ServerConfig(
        storage=StorageSettings(url=f"sqlite:///{tmp_path / 'store.db'}"),
        geography=demo_geography(),
        signing_key_file=key_file,
        gates=GatesSettings(lock_secrets_file=secrets),
    )
    svc = build_services(config)
    recorder = Recorder()
    gates = GateService(
        svc.store,
        svc.geography,
        config.gates,
        CommandSigner.from_file(key_file, config.gates.command_ttl_s),
        recorder,
    )
    yield GateWorld(svc, gates, recorder, key.public_key())
    svc.store.close()


@pytest.fixture
def gate_api(gate_world: GateWorld) -> Iterator[TestClient]:
    with TestClient(create_app(gate_world.services, gates=gate_world.gates)) as client:
        login_as(client, gate_world.services, "supervisor")
        yield client


def integration_client(
    api: TestClient, services: Services, name: str = "decl-system"
) -> TestClient:
    """A client of the app of `api` with an integration account's API token."""
    from server.auth.accounts import AccountStore
    from server.auth.config import AuthSettings
    from tests.server.auth.session import add_account

    add_account(services, name, "integration", password=None)
    token, _ = AccountStore(services.store.engine, AuthSettings()).issue_token(
        "test", name, "declaration system", None, utc_now()
    )
    return TestClient(api.app, headers={"Authorization": f"Bearer {token}"})

"""A server with a signing key and lock secrets, its GateService sending commands into a
list (tests.server.assembled), and helpers to feed edge messages through the store as
the ingest does."""

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
from contract.payloads import EdgeMessage, decode_edge
from contract.signing import load_private_key
from server import assembly
from server.app import create_app
from server.gates.service import GateService
from server.judge import Judge
from server.services import Services
from server.store.database import IncomingMessage
from tests.server.assembled import Recorder, assemble, server_config
from tests.server.auth.session import login_as

LOCK_SECRET = "lock-secret-EL-1-0123456789"


@dataclass
class GateWorld:
    services: Services
    gates: GateService
    recorder: Recorder
    public_key: Ed25519PublicKey
    seq: dict[str, int] = field(default_factory=dict)
    judge: Judge | None = None

    def feed(
        self, channel: str, node_id: str, ts: datetime, judged: bool = True, **fields: Any
    ) -> EdgeMessage:
        """Store an edge message as the ingest would, hand it to the server's judge (the
        trip rules; not with `judged=False`: a judge that lags), and return it."""
        seq = self.seq.get(node_id, 0) + 1
        self.seq[node_id] = seq
        raw = json.dumps({"node_id": node_id, "seq": seq, "ts": format_ts(ts), **fields})
        message = decode_edge(channel, raw)
        fresh = self.services.store.store_messages(
            [IncomingMessage(channel, message, raw, utc_now())]
        )
        assert len(fresh) == 1
        if judged:
            self.judge_them(fresh)
        return message

    def judge_them(self, fresh: list[IncomingMessage]) -> None:
        """The server's judge judges stored messages, and takes up trips that started."""
        if self.judge is None:
            svc = self.services
            self.judge = assembly.judge(
                svc.config, svc.store, svc.geography, svc.alarms, svc.lock_secrets
            )
        self.judge.judge_batch(fresh)
        # as its timers do every few seconds: a trip that started is taken up, and the
        # timer rules (silence, time limit) run
        self.judge.tick(utc_now())


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


def gate_world_in(folder: Path, **over: Any) -> GateWorld:
    """The server's components over SQLite in `folder`, signing with a key of their own,
    the secret of lock EL-1 (`LOCK_SECRET`); `over` replaces parts of the configuration.
    The caller closes `services.store`."""
    config = server_config(folder, {"EL-1": LOCK_SECRET}, **over)
    svc, recorder = assemble(config)
    assert config.signing_key_file is not None
    public_key = load_private_key(config.signing_key_file).public_key()
    return GateWorld(svc, svc.gates, recorder, public_key)


@pytest.fixture
def gate_world(tmp_path: Path) -> Iterator[GateWorld]:
    world = gate_world_in(tmp_path)
    yield world
    world.services.store.close()


@pytest.fixture
def gate_api(gate_world: GateWorld) -> Iterator[TestClient]:
    with TestClient(create_app(gate_world.services)) as client:
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

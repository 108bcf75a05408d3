"""A passage from a node that is not a configured gate is dropped before storage:
not stored, not decided, not answered; counted on `/metrics`. Through the whole
server (`serve`) and a real broker, in each deployment mode (`ingest.passages` ×
`ingest.judge`, server.config.IngestSettings): every mode the server offers runs here."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from pathlib import Path

import aiomqtt
import httpx
import pytest

from contract import topics
from contract.broker import BrokerSettings
from contract.ids import utc_now
from contract.signing import generate_private_key, private_key_to_pem
from devtools.broker import MosquittoBroker, free_port
from server.app import serve
from server.auth.accounts import AccountStore
from server.auth.config import AuthSettings
from server.config import HttpSettings, IngestSettings, ServerConfig, StorageSettings
from server.gates.service import DROPPED_PASSAGES
from server.gates.store import GateStore
from server.store import Store
from tests.server.auth.session import PASSWORD
from tests.server.conftest import demo_geography
from tests.server.gates.conftest import passage_fields
from tests.server.gates.test_broker import COMMANDS, Gates

GATE, NOT_A_GATE = "G-HUANGPU-1", "TRK-POSING-AS-GATE"


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("where", "judge"),
    [("process", "process"), ("process", "thread"), ("shared", "process"), ("shared", "thread")],
)
async def test_a_passage_from_a_node_that_is_no_gate_is_dropped(
    own_broker: MosquittoBroker, tmp_path: Path, where: str, judge: str
) -> None:
    key_file = tmp_path / "server.pem"
    key_file.write_bytes(private_key_to_pem(generate_private_key()))
    config = ServerConfig(
        broker=BrokerSettings(
            host=own_broker.host, port=own_broker.port, client_id=f"srv-{uuid.uuid4().hex[:8]}"
        ),
        http=HttpSettings(port=free_port()),
        storage=StorageSettings(url=f"sqlite:///{tmp_path / 'store.db'}"),
        geography=demo_geography(),
        ingest=IngestSettings.model_validate({"passages": where, "judge": judge}),
        signing_key_file=key_file,
    )
    store = Store.open(config.storage.url)
    AccountStore(store.engine, AuthSettings()).create(
        "test", "ops", "Ops", "officer", PASSWORD, utc_now()
    )
    ready = asyncio.Event()
    server = asyncio.create_task(serve(config, ready))
    try:
        await asyncio.wait_for(ready.wait(), 30)
        async with aiomqtt.Client(own_broker.host, own_broker.port, identifier="gates-x") as client:
            await client.subscribe(COMMANDS, qos=1)
            gates = Gates(client)
            pump = asyncio.create_task(gates.pump())
            try:
                await gates.publish("passage", NOT_A_GATE, topics.passage(NOT_A_GATE),
                                    **passage_fields("P-FORGED"))  # fmt: skip
                # A real gate's passage after it, on the same connection: once this one
                # is answered, the forged one has been handled.
                await gates.publish("passage", GATE, topics.passage(GATE),
                                    **passage_fields("P-REAL"))  # fmt: skip
                await gates.command_for("P-REAL", 10)
                await asyncio.sleep(0.3)
            finally:
                pump.cancel()
        answered = []
        while not gates.commands.empty():
            answered.append(json.loads(gates.commands.get_nowait()[1])["passage_id"])
        assert "P-FORGED" not in answered
        passages = GateStore(store.engine)
        assert passages.get_passage("P-FORGED") is None
        assert passages.get_passage("P-REAL") is not None
        assert store.message_count() == 1  # the real passage only
        base = f"http://{config.http.host}:{config.http.port}"
        async with httpx.AsyncClient(base_url=base) as http:
            assert (await http.get("/metrics")).status_code == 401
            login = await http.post(
                "/api/v1/auth/login", json={"username": "ops", "password": PASSWORD}
            )
            assert login.status_code == 200, login.text
            text = (await http.get("/metrics")).text
        assert f'{DROPPED_PASSAGES}{{reason="unknown_gate"}} 1' in text, text
    finally:
        server.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await server
        store.close()

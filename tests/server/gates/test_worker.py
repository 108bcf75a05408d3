"""The gate worker (server.gates.worker): passages decided in a child process, its events
relayed to the server, a killed child replaced without losing a passage, and no child
left behind when the server dies."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiomqtt
import httpx
import pytest
import yaml

from contract import topics
from contract.broker import BrokerSettings
from contract.ids import utc_now
from contract.payloads import GateCommand
from contract.signing import (
    CommandVerifier,
    MemoryNonceStore,
    generate_private_key,
    load_private_key,
    private_key_to_pem,
)
from devtools.broker import MosquittoBroker, free_port
from server.alarms import AlarmService
from server.assembly import load_lock_secrets
from server.config import HttpSettings, ServerConfig, StorageSettings
from server.gates.config import GatesSettings
from server.gates.store import GateStore
from server.gates.worker import GATE_NICE, GateWorker, WorkerSpec
from server.store import Store
from tests.lock_reports import write_lock_secrets
from tests.server.conftest import declaration, demo_geography
from tests.server.gates.conftest import LOCK_SECRET, passage_fields
from tests.server.gates.test_broker import COMMANDS, Gates, wait_until

ORIGIN = "G-HUANGPU-1"
PROJECT = Path(__file__).resolve().parents[3]


def _config(broker: MosquittoBroker, tmp_path: Path) -> tuple[ServerConfig, Path]:
    key_file = tmp_path / "server.pem"
    key_file.write_bytes(private_key_to_pem(generate_private_key()))
    secrets = write_lock_secrets(tmp_path / "lock-secrets.yaml", {"EL-1": LOCK_SECRET})
    config = ServerConfig(
        broker=BrokerSettings(
            host=broker.host, port=broker.port, client_id=f"srv-{uuid.uuid4().hex[:8]}"
        ),
        http=HttpSettings(port=0),
        storage=StorageSettings(url=f"sqlite:///{tmp_path / 'store.db'}"),
        geography=demo_geography(),
        signing_key_file=key_file,
        gates=GatesSettings(lock_secrets_file=secrets),
    )
    return config, key_file


class Relayed:
    def __init__(self) -> None:
        self.passages: list[str] = []
        self.alarms: list[int] = []


@contextlib.asynccontextmanager
async def running_worker(config: ServerConfig) -> AsyncIterator[tuple[GateWorker, Relayed]]:
    relayed = Relayed()
    worker = GateWorker(
        WorkerSpec(config, load_lock_secrets(config)),
        relayed.passages.append,
        relayed.alarms.append,
    )
    task = asyncio.create_task(worker.run())
    try:
        await asyncio.wait_for(worker.connected.wait(), 30)
        yield worker, relayed
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")  # a zombie is not alive either
    return not stat.exists() or stat.read_text().split(") ")[1][0] != "Z"


@pytest.mark.timeout(90)
async def test_passages_are_decided_in_a_child_process(
    own_broker: MosquittoBroker, tmp_path: Path
) -> None:
    config, _ = _config(own_broker, tmp_path)
    store = Store.open(config.storage.url)
    store.create_declaration(declaration(), utc_now())
    async with (
        running_worker(config) as (worker, relayed),
        aiomqtt.Client(own_broker.host, own_broker.port, identifier="gate-w1") as client,
    ):
        assert worker.pid is not None and worker.pid != os.getpid() and _alive(worker.pid)
        # before the rest of the machine where the server may raise it (root here)
        expected = GATE_NICE if os.geteuid() == 0 else os.getpriority(os.PRIO_PROCESS, 0)
        assert os.getpriority(os.PRIO_PROCESS, worker.pid) == expected
        await client.subscribe(COMMANDS, qos=1)
        gate = Gates(client)
        pump = asyncio.create_task(gate.pump())
        try:
            # the declared truck, whose lock has never reported (the store says so): hold
            await gate.publish("passage", ORIGIN, topics.passage(ORIGIN),
                               **passage_fields("P-W-OK", ["CSQU3054383"]))  # fmt: skip
            _, payload, _ = await gate.command_for("P-W-OK", 10)
            command = json.loads(payload)
            assert (command["action"], command["reasons"]) == (
                "hold",
                ["lock EL-1 has not reported"],
            )
            # a container that nobody declared: hold, and GATE_MISMATCH raised
            odd = passage_fields("P-W-ODD", ["MSKU1234565"], "粤B·00000")
            await gate.publish("passage", ORIGIN, topics.passage(ORIGIN), **odd)
            _, payload, _ = await gate.command_for("P-W-ODD", 10)
            assert json.loads(payload)["action"] == "hold"
            await wait_until(lambda: len(relayed.passages) == 2 and bool(relayed.alarms), 5)
        finally:
            pump.cancel()
        pid = worker.pid
    # the parent heard of both passages and of the alarm, which is the child's
    assert relayed.passages == ["P-W-OK", "P-W-ODD"]
    alarm = AlarmService(store.engine).get(relayed.alarms[0], history=False)
    assert alarm is not None and alarm.type == "GATE_MISMATCH"
    decided = {
        p: (GateStore(store.engine).get_passage(p) or {}).get("decision") for p in relayed.passages
    }
    assert decided == {"P-W-OK": "hold", "P-W-ODD": "hold"}
    assert not _alive(pid), "the child outlived its worker"
    store.close()


@pytest.mark.timeout(90)
async def test_a_killed_worker_is_replaced_and_no_passage_is_lost(
    own_broker: MosquittoBroker, tmp_path: Path
) -> None:
    config, key_file = _config(own_broker, tmp_path)
    store = Store.open(config.storage.url)
    store.create_declaration(declaration(), utc_now())
    async with (
        running_worker(config) as (worker, relayed),
        aiomqtt.Client(own_broker.host, own_broker.port, identifier="gate-w2") as client,
    ):
        await client.subscribe(COMMANDS, qos=1)
        gate = Gates(client)
        pump = asyncio.create_task(gate.pump())
        try:
            first = worker.pid
            assert first is not None
            os.kill(first, signal.SIGKILL)
            await wait_until(lambda: not worker.connected.is_set(), 10)  # the parent noticed
            # published while no child runs: the broker keeps it for the session
            await gate.publish("passage", ORIGIN, topics.passage(ORIGIN),
                               **passage_fields("P-W-GAP", ["CSQU3054383"]))  # fmt: skip
            topic, payload, _ = await gate.command_for("P-W-GAP", 30)
        finally:
            pump.cancel()
        assert worker.started == 2 and worker.pid not in (None, first)
    verifier = CommandVerifier(
        load_private_key(key_file).public_key(),
        ORIGIN,
        MemoryNonceStore(),
    )
    outcome = verifier.verify(GateCommand, payload)
    assert outcome.ok, outcome.detail
    assert isinstance(outcome.command, GateCommand) and outcome.command.passage_id == "P-W-GAP"
    assert topic == topics.command("gate", ORIGIN)
    assert relayed.passages == ["P-W-GAP"]
    store.close()


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


@pytest.mark.timeout(90)
def test_no_worker_outlives_a_killed_server(own_broker: MosquittoBroker, tmp_path: Path) -> None:
    config, _ = _config(own_broker, tmp_path)
    port = free_port()
    data = json.loads(config.model_copy(update={"http": HttpSettings(port=port)}).model_dump_json())
    config_file = tmp_path / "server.yaml"
    config_file.write_text(yaml.safe_dump(data))
    server = subprocess.Popen(
        [sys.executable, "-m", "server", "--config", str(config_file)],
        cwd=PROJECT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{port}/healthz").json()["broker_connected"]:
                    break
            time.sleep(0.2)
        else:
            raise AssertionError("the server never reported its connections up")
        workers = _children(server.pid)
        assert workers, "the server runs no child process"
        server.send_signal(signal.SIGKILL)
        server.wait(10)
        deadline = time.monotonic() + 15
        while any(_alive(w) for w in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(_alive(w) for w in workers), "a gate worker outlived the server"
    finally:
        if server.poll() is None:
            server.kill()

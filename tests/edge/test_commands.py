"""Signed commands: verified, executed once, every one answered on command/result."""

import asyncio
import base64
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from contract import topics
from contract.ids import utc_now
from contract.payloads import CommandResult, GateCommand, SignedCommand, TruckCommand, decode_edge
from contract.signing import generate_private_key, new_nonce, sign
from contract.topics import Kind
from edge.commands import CommandHandler, unseal_token
from edge.link import MqttLink
from edge.nonces import SqliteNonceStore
from edge.outbox import Outbox
from tests.edge.conftest import settings_for

NODE = "G1"


@pytest.fixture
def key():
    return generate_private_key()


def gate_command(**over) -> GateCommand:
    now = utc_now()
    fields = {
        "node_id": NODE,
        "command_id": f"c-{new_nonce()[:8]}",
        "passage_id": "p-1",
        "lane": "2",
        "action": "open",
        "reasons": ["declaration D1 matched"],
        "issued_at": now,
        "expires_at": now + timedelta(seconds=30),
        "nonce": new_nonce(),
    }
    fields.update(over)
    return GateCommand(**fields)


class Recorder:
    def __init__(self, answer=("done", "barrier opened")) -> None:
        self.seen: list[SignedCommand] = []
        self.answer = answer

    async def __call__(self, command: SignedCommand):
        self.seen.append(command)
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def make_handler(
    tmp_path: Path, key: Ed25519PrivateKey, execute: Any, kind: Kind = "gate", node: str = NODE
) -> tuple[CommandHandler, Outbox]:
    box = Outbox(tmp_path / "outbox.db", node, 1_000_000)
    nonces = SqliteNonceStore(tmp_path / "nonces.db")
    return CommandHandler(kind, node, key.public_key(), nonces, box, execute), box


def results(box: Outbox) -> list[CommandResult]:
    out = []
    for item in box.pending(100):
        assert item.topic == topics.command_result("gate", NODE)
        model = decode_edge("command/result", item.payload)
        assert isinstance(model, CommandResult)
        out.append(model)
    return out


async def test_valid_command_is_executed_and_answered_done(tmp_path, key):
    run = Recorder()
    handler, box = make_handler(tmp_path, key, run)
    command = sign(gate_command(), key)
    answer = await handler.process(command.to_json())
    assert answer.result == "done"
    assert [c.command_id for c in run.seen] == [command.command_id]
    assert isinstance(run.seen[0], GateCommand)
    assert run.seen[0].action == "open"
    [result] = results(box)
    assert result.command_id == command.command_id
    assert result.result == "done"
    assert result.detail == "barrier opened"
    assert result.node_id == NODE
    assert result.seq == answer.seq


async def test_forged_signature_is_refused_as_bad_signature(tmp_path, key):
    run = Recorder()
    handler, box = make_handler(tmp_path, key, run)
    forged = sign(gate_command(), generate_private_key())  # someone else's key
    answer = await handler.process(forged.to_json())
    assert answer.result == "bad_signature"
    assert run.seen == []
    assert [r.result for r in results(box)] == ["bad_signature"]


async def test_tampered_command_is_refused_as_bad_signature(tmp_path, key):
    run = Recorder()
    handler, box = make_handler(tmp_path, key, run)
    data = json.loads(sign(gate_command(action="hold"), key).to_json())
    data["action"] = "open"  # changed after signing
    answer = await handler.process(json.dumps(data).encode())
    assert answer.result == "bad_signature"
    assert run.seen == []
    # A garbled signature, too.
    data = json.loads(sign(gate_command(), key).to_json())
    data["signature"] = base64.b64encode(b"\0" * 64).decode()
    assert (await handler.process(json.dumps(data).encode())).result == "bad_signature"
    data.pop("signature")
    assert (await handler.process(json.dumps(data).encode())).result == "bad_signature"
    assert [r.result for r in results(box)] == ["bad_signature"] * 3


async def test_expired_command_is_answered_expired(tmp_path, key):
    run = Recorder()
    handler, box = make_handler(tmp_path, key, run)
    old = utc_now() - timedelta(minutes=5)
    expired = sign(gate_command(issued_at=old, expires_at=old + timedelta(seconds=30)), key)
    answer = await handler.process(expired.to_json())
    assert answer.result == "expired"
    assert run.seen == []
    assert results(box)[0].result == "expired"
    assert "expired" in results(box)[0].detail


async def test_misaddressed_command_is_refused(tmp_path, key):
    run = Recorder()
    handler, box = make_handler(tmp_path, key, run)
    other = sign(gate_command(node_id="G2"), key)
    answer = await handler.process(other.to_json())
    assert answer.result == "refused"
    assert "G2" in answer.detail
    assert run.seen == []
    assert [r.result for r in results(box)] == ["refused"]


async def test_replay_is_refused_also_after_a_restart(tmp_path, key):
    run = Recorder()
    handler, box = make_handler(tmp_path, key, run)
    wire = sign(gate_command(), key).to_json()
    assert (await handler.process(wire)).result == "done"
    assert (await handler.process(wire)).result == "refused"
    # The agent restarts: new handler, new store objects, same files.
    box.close()
    handler2, box2 = make_handler(tmp_path, key, run)
    answer = await handler2.process(wire)
    assert answer.result == "refused"
    assert "replay" in answer.detail
    assert len(run.seen) == 1
    assert [r.result for r in results(box2)] == ["done", "refused", "refused"]


async def test_malformed_payloads_are_refused_and_answered_when_possible(tmp_path, key):
    run = Recorder()
    handler, box = make_handler(tmp_path, key, run)
    assert (await handler.process(b"\xff\xfe not json")).command_id is None
    assert (await handler.process(b"[1, 2]")).result == "refused"
    answer = await handler.process(b'{"command_id": "c-9", "action": "open"}')
    assert answer.result == "refused"
    assert answer.command_id == "c-9"
    assert [(r.command_id, r.result) for r in results(box)] == [("c-9", "refused")]
    assert run.seen == []


async def test_executor_failure_and_refusal_are_reported(tmp_path, key):
    handler, box = make_handler(tmp_path, key, Recorder(RuntimeError("relay stuck")))
    answer = await handler.process(sign(gate_command(), key).to_json())
    assert answer.result == "failed"
    assert "relay stuck" in answer.detail
    handler.execute = Recorder(("refused", "lane occupied"))
    assert (await handler.process(sign(gate_command(), key).to_json())).result == "refused"
    assert [r.result for r in results(box)] == ["failed", "refused"]


async def test_truck_commands_use_the_truck_model(tmp_path, key):
    run = Recorder(("done", "unsealed"))
    handler, _box = make_handler(tmp_path, key, run, kind="truck", node="T9")
    now = utc_now()
    command = TruckCommand(
        node_id="T9",
        command_id="u-1",
        action="unseal",
        lock_id="L1",
        trip_id="TR1",
        issued_at=now,
        expires_at=now + timedelta(seconds=60),
        nonce=new_nonce(),
    )
    assert (await handler.process(sign(command, key).to_json())).result == "done"
    assert isinstance(run.seen[0], TruckCommand)
    assert run.seen[0].lock_id == "L1"


def test_an_unseal_token_is_decoded_or_refused_with_the_reason():
    now = utc_now()
    fields: dict[str, Any] = {
        "node_id": "T9",
        "command_id": "u-2",
        "action": "unseal",
        "lock_id": "L1",
        "trip_id": "TR1",
        "issued_at": now,
        "expires_at": now + timedelta(seconds=60),
        "nonce": new_nonce(),
    }
    token = bytes(range(40))
    encoded = base64.b64encode(token).decode()
    assert unseal_token(TruckCommand(**fields, lock_token=encoded)) == token
    with pytest.raises(ValueError, match=r"needs the lock's authorisation token"):
        unseal_token(TruckCommand(**fields))
    with pytest.raises(ValueError, match="lock_token is not base64"):
        unseal_token(TruckCommand(**fields, lock_token="not*base64"))


async def test_nonce_store_forgets_only_long_after_expiry(tmp_path):
    store = SqliteNonceStore(tmp_path / "n.db", grace=timedelta(seconds=1))
    long_ago = utc_now() - timedelta(hours=1)
    assert store.claim("a" * 20, long_ago)
    assert store.claim("b" * 20, utc_now() + timedelta(minutes=1))
    assert not store.claim("b" * 20, utc_now() + timedelta(minutes=1))
    assert len(store) == 1  # "a…" expired beyond the grace period and was pruned
    assert not SqliteNonceStore(tmp_path / "n.db").claim("b" * 20, utc_now())


async def test_command_end_to_end_through_the_broker(tmp_path, key, own_broker, collector):
    run = Recorder()
    box = Outbox(tmp_path / "outbox.db", NODE, 1_000_000)
    handler = CommandHandler(
        "gate", NODE, key.public_key(), SqliteNonceStore(tmp_path / "n.db"), box, run
    )
    link = MqttLink(settings_for(own_broker), "gate", NODE, box, handler.handle)
    task = asyncio.create_task(link.run())
    try:
        await collector.wait_for(lambda: len(collector.on("availability")) >= 1)
        command = sign(gate_command(), key)
        async with aiomqtt.Client("127.0.0.1", own_broker.port) as server:
            wire = command.to_json()
            await server.publish(topics.command("gate", NODE), wire, qos=1)
            await server.publish(topics.command("gate", NODE), wire, qos=1)  # replayed
        await collector.wait_for(lambda: len(collector.on("command/result")) >= 2)
    finally:
        await link.stop()
        await task
    got = [(p["command_id"], p["result"]) for p in collector.on("command/result")]
    assert got == [(command.command_id, "done"), (command.command_id, "refused")]
    assert len(run.seen) == 1


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
async def test_command_sent_while_the_node_is_away_is_delivered_on_return(
    tmp_path, key, own_broker, collector, protocol
):
    run = Recorder()
    box = Outbox(tmp_path / "outbox.db", NODE, 1_000_000)
    handler = CommandHandler(
        "gate", NODE, key.public_key(), SqliteNonceStore(tmp_path / "n.db"), box, run
    )
    settings = settings_for(own_broker, protocol=protocol)
    link = MqttLink(settings, "gate", NODE, box, handler.handle)
    task = asyncio.create_task(link.run())
    await collector.wait_for(lambda: len(collector.on("availability")) >= 1)
    await link.stop()
    await task
    # The node is away; its persistent session keeps the subscription.
    command = sign(gate_command(), key)
    async with aiomqtt.Client("127.0.0.1", own_broker.port) as server:
        await server.publish(topics.command("gate", NODE), command.to_json(), qos=1)
    link = MqttLink(settings, "gate", NODE, box, handler.handle)
    task = asyncio.create_task(link.run())
    try:
        await collector.wait_for(lambda: len(collector.on("command/result")) >= 1)
    finally:
        await link.stop()
        await task
    assert [c.command_id for c in run.seen] == [command.command_id]
    assert collector.on("command/result")[0]["result"] == "done"

"""Hostile commands for an agent's command topic, and what the agent must make of them.

`hostile(key, good, field, tag)` turns `good` — the fields of a command the server signed
for the node — into every kind of bad command of issue 17: arbitrary bytes, invalid UTF-8,
nesting within the command limit and within the broker's packet limit, a 5,000-digit
number, NaN, wrong types, an unknown field, another node's command, an expired one, one
dated ahead, one forged with another key, one tampered after signing (`field`, the id of
what the command is for, changed), one without its signature. Each carries the outcome and
refusal reason docs/edge-outbox.md ("Commands") gives it; those without a readable
command id (`unreadable-…` inside, or none) must never be answered.

Used by the gate's and the truck's HIL tests (test_gate_hostile_commands.py,
test_truck_hostile_commands.py).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import random
import re
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import aiomqtt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from contract import topics
from contract.ids import format_ts, utc_now
from contract.payloads import CommandResult, SignedCommand, decode_edge
from contract.signing import generate_private_key, new_nonce, signing_bytes
from contract.topics import Kind

#: An attacker's key: whatever it signs does not verify.
OTHER_KEY = generate_private_key()
#: A node that is not the one under test.
OTHER_NODE = "X-OTHER-9"


@dataclass(frozen=True)
class Sent:
    """One command as published, and what the agent must make of it."""

    what: str
    raw: bytes
    #: The outcome the agent counts (`CommandHandler.counts`) and answers, if it can.
    outcome: str
    #: Why it was not verified (`CommandHandler.refusals`); None: verified, then refused
    #: or done by the agent's executor.
    reason: str | None
    #: The command id its answer must carry; None: unreadable, never answered.
    command_id: str | None
    #: A part of the answer's `detail`.
    detail: str = ""


def fields(command: SignedCommand) -> dict[str, Any]:
    """A command's wire fields."""
    data: dict[str, Any] = json.loads(command.to_json())
    return data


def wire(payload: Any) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()


def resigned(payload: dict[str, Any], key: Ed25519PrivateKey) -> dict[str, Any]:
    """`payload` with the signature of `key` over everything else in it."""
    signature = key.sign(signing_bytes(payload))  # signing_bytes leaves `signature` out
    return {**payload, "signature": base64.b64encode(signature).decode()}


def verified(command: SignedCommand, outcome: str, detail: str, what: str) -> Sent:
    """A command the server signed for this node: verified, then up to the executor."""
    return Sent(what, command.to_json(), outcome, None, command.command_id, detail)


def replayed(command: SignedCommand) -> Sent:
    """`command` again, byte for byte, after it was carried out."""
    return Sent("replayed", command.to_json(), "refused", "replay", command.command_id, "replay")


def hostile(key: Ed25519PrivateKey, good: dict[str, Any], field: str, tag: str) -> list[Sent]:
    """Every kind of bad command made from `good` (ids of their own, from `tag`). `key` is
    the server's: some are signed by it and still refused (another node's, expired,
    dated ahead, with an unknown field)."""
    rng = random.Random(tag)
    node = good["node_id"]

    def cid(name: str) -> str:
        return f"{name}-{tag}"

    def with_id(name: str, **change: Any) -> dict[str, Any]:
        return {**good, "command_id": cid(name), "nonce": new_nonce(), **change}

    def sent(name: str, payload: dict[str, Any], by: Ed25519PrivateKey = key) -> bytes:
        return wire(resigned(with_id(name, **payload), by))

    def issued(in_s: float) -> dict[str, Any]:
        at = utc_now() + timedelta(seconds=in_s)
        return {"issued_at": format_ts(at), "expires_at": format_ts(at + timedelta(seconds=30))}

    def spliced(name: str, text: str) -> bytes:
        """The command with `field`'s value written as raw `text` (not JSON-quoted)."""
        return wire(with_id(name, **{field: "@@"})).replace(b'"@@"', text.encode("utf-8"))

    tampered = resigned(with_id("tampered", **{field: "another-one"}), key)
    tampered[field] = good[field]  # after signing
    stripped = with_id("stripped")
    del stripped["signature"]
    return [
        Sent("arbitrary bytes", b"\xff" + rng.randbytes(300), "refused", "not_utf8", None),
        Sent(
            "invalid UTF-8 in a command",
            spliced("unreadable-latin1", '"caf@"').replace(b"@", b"\xe9"),
            "refused",
            "not_utf8",
            None,
        ),
        Sent("text", b"OPEN NOW", "refused", "not_json", None),
        Sent("empty", b"", "refused", "not_json", None),
        Sent(
            "nesting 7000 deep within the command limit",
            spliced("unreadable-deep", "[" * 7000 + "]" * 7000),
            "refused",
            "too_deep",
            None,
        ),
        Sent(
            "nesting 32000 deep within the broker's packet limit",
            b"[" * 32000 + b"]" * 32000,
            "refused",
            "too_large",
            None,
        ),
        Sent(
            "a number of 5000 digits",
            spliced("unreadable-digits", "7" * 5000),
            "refused",
            "number_too_long",
            None,
        ),
        Sent("not an object", wire([with_id("unreadable-array")]), "refused", "not_object", None),
        Sent(
            "command id not a string",
            wire({**good, "command_id": 12345}),
            "refused",
            "invalid",
            None,
        ),
        Sent(
            "NaN",
            spliced("nan", "NaN"),
            "refused",
            "invalid",
            cid("nan"),
            f"{field}: Input should be a valid string",
        ),
        Sent(
            "wrong types",
            wire(with_id("types", **{field: 17, "action": True})),
            "refused",
            "invalid",
            cid("types"),
            "malformed command",
        ),
        Sent(
            "a lone surrogate",
            spliced("surrogate", '"\\ud800"'),
            "refused",
            "not_json",
            cid("surrogate"),
            "not JSON",
        ),
        Sent(
            "an unknown field, signed by the server's key",
            sent("unknown", {"force": True}),
            "refused",
            "invalid",
            cid("unknown"),
            "force: unknown field",
        ),
        Sent(
            "another node's command, signed by the server's key",
            sent("other-node", {"node_id": OTHER_NODE}),
            "refused",
            "wrong_node",
            cid("other-node"),
            f"command is for {OTHER_NODE}, not {node}",
        ),
        Sent(
            "expired, signed by the server's key",
            sent("expired", issued(-300)),
            "expired",
            "expired",
            cid("expired"),
            "expired at",
        ),
        Sent(
            "dated five minutes ahead, signed by the server's key",
            sent("future", issued(300)),
            "refused",
            "future",
            cid("future"),
            "issued_at is in the future",
        ),
        Sent(
            "signed with another key",
            sent("forged", {}, by=OTHER_KEY),
            "bad_signature",
            "bad_signature",
            cid("forged"),
            "signature does not verify",
        ),
        Sent(
            f"{field} changed after signing",
            wire(tampered),
            "bad_signature",
            "bad_signature",
            cid("tampered"),
            "signature does not verify",
        ),
        Sent(
            "no signature",
            wire(stripped),
            "bad_signature",
            "bad_signature",
            cid("stripped"),
            "signature does not verify",
        ),
    ]


def flood(
    key: Ed25519PrivateKey,
    good: dict[str, Any],
    field: str,
    count: int,
    tag: str,
    replay: Sent | None = None,
) -> list[Sent]:
    """`count` bad commands, the kinds of `hostile` in turn (and `replay` among them)."""
    out: list[Sent] = []
    while len(out) < count:
        out += hostile(key, good, field, f"{tag}{len(out)}")
        if replay is not None:
            out.append(replay)
    return out[:count]


@contextlib.asynccontextmanager
async def client(host: str, port: int, name: str) -> AsyncIterator[aiomqtt.Client]:
    """A broker client of its own (`name`: who it stands for, e.g. `hostile`)."""
    async with aiomqtt.Client(host, port, identifier=f"{name}-{new_nonce()[:8]}") as connected:
        yield connected


async def publish(client: aiomqtt.Client, kind: Kind, node: str, sent: list[Sent]) -> None:
    """On the node's command topic, in order, each taken by the broker (PUBACK) first."""
    for item in sent:
        await client.publish(topics.command(kind, node), item.raw, qos=1)


@contextlib.asynccontextmanager
async def answers_of(host: str, port: int, kind: Kind, node: str) -> AsyncIterator[list[Any]]:
    """The node's `command/result` payloads, in arrival order, while in the block."""
    answers: list[Any] = []
    async with aiomqtt.Client(host, port, identifier=f"results-{new_nonce()[:8]}") as client:
        await client.subscribe(topics.command_result(kind, node), qos=1)

        async def pump() -> None:
            async for message in client.messages:
                assert isinstance(message.payload, bytes)
                answers.append(json.loads(message.payload))

        task = asyncio.create_task(pump())
        try:
            yield answers
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await task


async def answered(
    answers: list[dict[str, Any]], sent: list[Sent], node: str, within_s: float = 30.0
) -> None:
    """Wait for the answers to `sent`; then they must be exactly those (`check_answers`)."""
    due = sum(1 for item in sent if item.command_id is not None)
    async with asyncio.timeout(within_s):
        while len(answers) < due:  # noqa: ASYNC110 - filled by any client's receiver
            await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)  # an answer too many would arrive about now
    check_answers(answers, sent, node)


def check_answers(answers: list[dict[str, Any]], sent: list[Sent], node: str) -> None:
    """`answers` (the `command/result` payloads, in arrival order) are exactly those of
    `sent`: one per command with a readable id, with its outcome and detail, none else."""
    got = []
    for payload in answers:  # as the server reads them: the contract's model accepts each
        result = decode_edge("command/result", wire(payload), node)
        assert isinstance(result, CommandResult)
        got.append(result)
    expected = [item for item in sent if item.command_id is not None]
    outcomes: Counter[tuple[str | None, str]] = Counter((r.command_id, r.result) for r in got)
    due: Counter[tuple[str | None, str]] = Counter((i.command_id, i.outcome) for i in expected)
    assert outcomes == due, (
        f"answered, not due: {outcomes - due}; due, not answered: {due - outcomes}"
    )
    assert not [r for r in got if "unreadable" in r.command_id]
    # The answers to one command id (a replay shares it) come in the order sent.
    by_id: dict[str, list[CommandResult]] = {}
    for result in got:
        by_id.setdefault(result.command_id, []).append(result)
    for item in expected:
        assert item.command_id is not None
        answer = by_id[item.command_id].pop(0)
        assert item.detail in answer.detail, (item.what, answer)


def refusal_lines(log_lines: list[str]) -> Counter[str]:
    """How often each refusal reason was logged by `edge.commands`."""
    pattern = re.compile(r" refused as \S+ \((\w+)\)")
    return Counter(m.group(1) for line in log_lines if (m := pattern.search(line)))


def check_tally(log_text: str, sent: list[Sent]) -> None:
    """The agent's `commands since start` line (logged when it stops) counts `sent`:
    answers by outcome, refusals by reason."""
    tally = re.search(
        r"commands since start: answered (\{.*\}), not verified (\{.*\})$", log_text, re.MULTILINE
    )
    assert tally is not None, log_text[-2000:]
    assert json.loads(tally.group(1)) == dict(Counter(item.outcome for item in sent))
    reasons = Counter(item.reason for item in sent if item.reason is not None)
    assert json.loads(tally.group(2)) == dict(reasons)

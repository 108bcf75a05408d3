"""Verification and execution of signed server→edge commands.

Every command is checked by `contract.signing.CommandVerifier` (Ed25519 signature
against the server's public key, addressee, expiry, a never-seen nonce) before the
agent's executor runs it. Every command that carries a `command_id` is answered on
`{kind}/{node_id}/command/result` through the outbox: `done`, `refused`, `expired`,
`bad_signature` or `failed`, with the reason in `detail`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from contract import topics
from contract.ids import format_ts, utc_now
from contract.payloads import CommandOutcome, GateCommand, SignedCommand, TruckCommand
from contract.signing import DEFAULT_CLOCK_SKEW, CommandVerifier, NonceStore
from contract.topics import Kind
from edge.outbox import Outbox, OutboxError

log = logging.getLogger(__name__)

#: What an executor may answer for a verified command.
ExecOutcome = Literal["done", "refused", "failed"]
Executor = Callable[[SignedCommand], Awaitable[tuple[ExecOutcome, str]]]

#: Each kind of node receives its own command model.
COMMAND_MODELS: dict[str, type[SignedCommand]] = {"gate": GateCommand, "truck": TruckCommand}
#: Longest `detail` the result payload allows.
_DETAIL_MAX = 1000


@dataclass(frozen=True, slots=True)
class CommandAnswer:
    """What was answered to one command (for logs and tests)."""

    command_id: str | None
    result: CommandOutcome
    detail: str
    seq: int | None  # seq of the command/result message, None when not answered


class CommandHandler:
    """Verifies raw command payloads, runs valid ones, answers every one.

    Use `handle` as the `on_command` callback of `edge.link.MqttLink`.
    """

    def __init__(
        self,
        kind: Kind,
        node_id: str,
        public_key: Ed25519PublicKey,
        nonces: NonceStore,
        outbox: Outbox,
        execute: Executor,
        *,
        clock_skew: timedelta = DEFAULT_CLOCK_SKEW,
    ) -> None:
        self.kind: Kind = kind
        self.node_id = node_id
        self.model = COMMAND_MODELS[kind]
        self.outbox = outbox
        self.execute = execute
        self.result_topic = topics.command_result(kind, node_id)
        self._verifier = CommandVerifier(public_key, node_id, nonces, clock_skew)
        #: Answers given, by outcome (for health and metrics).
        self.counts: dict[str, int] = {}

    async def handle(self, raw: bytes) -> None:
        """The `on_command` callback: verify, execute, answer."""
        await self.process(raw)

    async def process(self, raw: bytes) -> CommandAnswer:
        """Verify and run one command; returns what was answered."""
        check = self._verifier.verify(self.model, raw)
        command = check.command
        command_id = command.command_id if command is not None else _raw_command_id(raw)
        if not check.ok or command is None:
            outcome: CommandOutcome = check.result or "refused"
            log.warning(
                "node %s: command %s refused as %s: %s",
                self.node_id,
                command_id,
                outcome,
                check.detail,
            )
            return self._answer(command_id, outcome, check.detail)
        log.info(
            "node %s: command %s verified (%s)",
            self.node_id,
            command_id,
            getattr(command, "action", "?"),
        )
        try:
            result, detail = await self.execute(command)
        except Exception as err:
            log.exception("node %s: command %s failed in the executor", self.node_id, command_id)
            result, detail = "failed", f"{type(err).__name__}: {err}"
        if result not in ("done", "refused", "failed"):
            detail = f"executor answered {result!r}: {detail}"
            result = "failed"
        return self._answer(command_id, result, detail)

    def _answer(self, command_id: str | None, result: CommandOutcome, detail: str) -> CommandAnswer:
        self.counts[result] = self.counts.get(result, 0) + 1
        if not command_id:
            # Without a command id the server could not match an answer: log only.
            log.warning("node %s: unanswerable command (%s): %s", self.node_id, result, detail)
            return CommandAnswer(None, result, detail, None)
        payload = {
            "ts": format_ts(utc_now()),
            "command_id": command_id,
            "result": result,
            "detail": detail[:_DETAIL_MAX],
        }
        try:
            seq = self.outbox.enqueue(self.result_topic, payload)
        except OutboxError:
            log.exception(
                "node %s: cannot store the result of command %s", self.node_id, command_id
            )
            return CommandAnswer(command_id, result, detail, None)
        return CommandAnswer(command_id, result, detail, seq)


def _raw_command_id(raw: bytes) -> str | None:
    """The `command_id` of a payload that did not parse, when it has a usable one."""
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(data, dict):
        return None
    value = data.get("command_id")
    if isinstance(value, str) and 1 <= len(value) <= 128:
        return value
    return None

"""Verification and execution of signed server→edge commands.

Every command is checked by `contract.signing.CommandVerifier` (Ed25519 signature
against the server's public key, addressee, expiry, a never-seen nonce) before the
agent's executor runs it. Every command that carries a `command_id` is answered on
`{kind}/{node_id}/command/result` through the outbox: `done`, `refused`, `expired`,
`bad_signature` or `failed`, with the reason in `detail`.

Whatever arrives — arbitrary bytes, nesting, huge numbers, wrong types, another node's
command, an expired one, a forged or replayed one — is answered (when it names a command
id) and counted by outcome and reason; it never reaches the executor unverified and no
exception leaves `handle`. A refusal is logged at most once per reason and minute.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal, Protocol

from contract import topics
from contract.ids import format_ts, utc_now
from contract.limits import MAX_PAYLOAD_BYTES, LimitError, check_raw
from contract.log_throttle import LogThrottle, and_more
from contract.payloads import CommandOutcome, GateCommand, SignedCommand, TruckCommand
from contract.signing import DEFAULT_CLOCK_SKEW, CommandVerifier, NonceStore, VerifyKey
from contract.topics import Kind
from edge.outbox import OutboxError

log = logging.getLogger(__name__)

#: What an executor may answer for a verified command.
ExecOutcome = Literal["done", "refused", "failed"]
Executor = Callable[[SignedCommand], Awaitable[tuple[ExecOutcome, str]]]

#: Each kind of node receives its own command model.
COMMAND_MODELS: dict[str, type[SignedCommand]] = {"gate": GateCommand, "truck": TruckCommand}
#: Longest `detail` the result payload allows.
_DETAIL_MAX = 1000


def unseal_token(command: TruckCommand) -> bytes:
    """The single-use lock token an `unseal` carries, decoded; `ValueError` with the
    refusal's words when it is missing or not base64 (the truck agent and the JT/T 808
    gateway answer `refused` with them)."""
    if command.lock_token is None:
        raise ValueError("unseal needs the lock's authorisation token (lock_token)")
    try:
        return base64.b64decode(command.lock_token, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("lock_token is not base64") from None


class ResultSink(Protocol):
    """Where answers go: a node's `Outbox`, or a JT/T 808 gateway's store for that node.
    `enqueue` stores the message durably and returns its seq, or raises `OutboxError`."""

    def enqueue(self, topic: str, payload: dict[str, Any]) -> int: ...


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
        public_key: VerifyKey,
        nonces: NonceStore,
        outbox: ResultSink,
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
        #: Commands not verified, by reason (`Verification.reason`; `internal`: a bug).
        self.refusals: dict[str, int] = {}
        self._log_throttle = LogThrottle()

    async def handle(self, raw: bytes) -> None:
        """The `on_command` callback: verify, execute, answer. Never raises."""
        try:
            await self.process(raw)
        except Exception:  # the boundary: process() has precise reasons inside
            self._refused("internal")
            log.exception("node %s: command of %d bytes not handled", self.node_id, len(raw))

    async def process(self, raw: bytes) -> CommandAnswer:
        """Verify and run one command; returns what was answered."""
        check = self._verifier.verify(self.model, raw)
        command = check.command
        command_id = command.command_id if command is not None else _raw_command_id(raw)
        if not check.ok or command is None:
            outcome: CommandOutcome = check.result or "refused"
            reason = check.reason or outcome
            self._refused(reason)
            left_out = self._log_throttle.admit(reason)
            if left_out is not None:
                log.warning(
                    "node %s: command %s refused as %s (%s): %s%s",
                    self.node_id,
                    command_id,
                    outcome,
                    reason,
                    check.detail[:300],
                    and_more(left_out, self._log_throttle.window_s),
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

    def tally(self) -> str:
        """Answers by outcome and refusals by reason since start, as JSON, for the log
        (the refusals' own lines are throttled and leave most of a flood out)."""
        return (
            f"answered {json.dumps(self.counts, sort_keys=True)}, "
            f"not verified {json.dumps(self.refusals, sort_keys=True)}"
        )

    def _refused(self, reason: str) -> None:
        self.refusals[reason] = self.refusals.get(reason, 0) + 1

    def _answer(self, command_id: str | None, result: CommandOutcome, detail: str) -> CommandAnswer:
        self.counts[result] = self.counts.get(result, 0) + 1
        if not command_id:
            # Without a command id the server could not match an answer: counted only.
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
        check_raw(raw, MAX_PAYLOAD_BYTES["command"])  # no nesting or digits past the bounds
        data = json.loads(raw)
    except (LimitError, ValueError, RecursionError):  # bad UTF-8 or JSON
        return None
    if not isinstance(data, dict):
        return None
    value = data.get("command_id")
    # printable: no control characters, no lone surrogates (which UTF-8 cannot carry back)
    if isinstance(value, str) and 1 <= len(value) <= 128 and value.isprintable():
        return value
    return None

"""What every agent is made of: its outbox, health reporter, command handler and MQTT link."""

from __future__ import annotations

from dataclasses import dataclass

from contract.signing import load_verify_key
from contract.topics import Kind
from edge.commands import CommandHandler, Executor
from edge.config import AgentCommon
from edge.health import HealthReporter
from edge.link import MqttLink
from edge.nonces import SqliteNonceStore
from edge.outbox import Outbox


@dataclass
class NodePlumbing:
    outbox: Outbox
    health: HealthReporter
    commands: CommandHandler
    link: MqttLink

    @classmethod
    def build(
        cls, config: AgentCommon, kind: Kind, execute: Executor, context: str | None = None
    ) -> NodePlumbing:
        """The durable outbox (its state published as health), the health reporter, the
        handler that verifies and answers commands, and the link.

        `context` names the node in log lines (default `"{kind} {node_id}"`).
        """
        outbox = Outbox.from_settings(config.outbox, config.node_id)
        health = HealthReporter(kind, config.node_id, outbox, context or f"{kind} {config.node_id}")
        outbox.add_state_listener(health.on_outbox_state)
        commands = CommandHandler(
            kind,
            config.node_id,
            load_verify_key(config.server_public_key),
            SqliteNonceStore(config.outbox.nonce_path),
            outbox,
            execute,
        )
        link = MqttLink.from_settings(
            config.broker, kind, config.node_id, outbox, commands.handle, config.outbox
        )
        return cls(outbox, health, commands, link)

"""What every agent is made of: its outbox, its verified command handler and its MQTT link."""

from __future__ import annotations

from dataclasses import dataclass

from contract.signing import load_public_key
from contract.topics import Kind
from edge.commands import CommandHandler, Executor
from edge.config import AgentCommon
from edge.link import MqttLink
from edge.nonces import SqliteNonceStore
from edge.outbox import Outbox


@dataclass
class NodePlumbing:
    outbox: Outbox
    commands: CommandHandler
    link: MqttLink

    @classmethod
    def build(cls, config: AgentCommon, kind: Kind, execute: Executor) -> NodePlumbing:
        """The durable outbox, the handler that verifies and answers commands, the link."""
        outbox = Outbox.from_settings(config.outbox, config.node_id)
        commands = CommandHandler(
            kind,
            config.node_id,
            load_public_key(config.server_public_key),
            SqliteNonceStore(config.outbox.nonce_path),
            outbox,
            execute,
        )
        link = MqttLink.from_settings(
            config.broker, kind, config.node_id, outbox, commands.handle, config.outbox
        )
        return cls(outbox, commands, link)

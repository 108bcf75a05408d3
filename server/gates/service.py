"""The gate service of a server process, in three parts, each collaborator passed in:

- passage decisions (`server.gates.passages.PassageDecisions`): passages in, decisions
  and signed commands out, command results stored;
- officer actions (`server.gates.officer.OfficerActions`): release records and
  overrides (corrections of readings: `server.gates.corrections`);
- remote unseal (`server.gates.unseal.RemoteUnseal`).

`GateService` holds the three and answers for them: the ingest and the REST API see one
object. Each operation is recorded in the audit log with its change.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from contract.payloads import (
    CommandResult,
    ContainerReading,
    GateCommand,
    Passage,
    PlateReading,
    SignedCommand,
)
from contract.topics import Kind
from server.alarms import AlarmService
from server.gates.appointments import Direction
from server.gates.commands import CommandSigner, Publisher
from server.gates.config import GatesSettings
from server.gates.decide import Decision
from server.gates.officer import OfficerActions, OverrideAction
from server.gates.passages import DROPPED_PASSAGES as DROPPED_PASSAGES
from server.gates.passages import GATE_MISMATCH as GATE_MISMATCH
from server.gates.passages import SYSTEM as SYSTEM
from server.gates.passages import PassageDecisions
from server.gates.store import PassageQuery
from server.gates.unseal import RemoteUnseal
from server.geo import Geography
from server.lock_secrets import LockSecrets
from server.store import Store
from server.store.database import IncomingMessage


class GateService:
    """One per server process; thread-safe (each operation is its own transaction)."""

    def __init__(
        self,
        store: Store,
        geography: Geography,
        settings: GatesSettings,
        signer: CommandSigner,
        publisher: Publisher | None,
        alarms: AlarmService,
        lock_secrets: LockSecrets,
        inline: bool = False,
    ) -> None:
        """`publisher`: None records commands without sending them. `inline`: decide
        passages in the event loop's own thread rather than a worker thread — for the
        gate worker, whose loop does nothing else: a passage then wakes no other thread
        on its way to the command."""
        self.decisions = PassageDecisions(
            store, geography, settings, signer, publisher, alarms, lock_secrets, inline
        )
        self.officer = OfficerActions(self.decisions)
        self.remote_unseal = RemoteUnseal(self.decisions)
        self.store = store
        self.gates = self.decisions.gates
        self.appointments = self.decisions.appointments
        self.geography = geography
        self.settings = settings
        self.signer = signer
        self.publisher = publisher
        self.alarms = alarms
        self.lock_secrets = lock_secrets

    # ---- passage decisions (server.gates.passages) --------------------------------------

    def add_listener(self, callback: Callable[[str], None]) -> None:
        """Call `callback(passage_id)` after each passage is decided and recorded."""
        self.decisions.add_listener(callback)

    def notify_passage(self, passage_id: str) -> None:
        """Tell the listeners (the console's live stream) that a passage changed."""
        self.decisions.notify_passage(passage_id)

    def add_drop_listener(self, callback: Callable[[str], None]) -> None:
        """Call `callback(node_id)` for each passage dropped unstored because its node is
        not a configured gate (`store_passages`)."""
        self.decisions.add_drop_listener(callback)

    def gate_of_node(self, node_id: str) -> str | None:
        return self.decisions.gate_of_node(node_id)

    def node_of_gate(self, gate_id: str) -> str:
        return self.decisions.node_of_gate(gate_id)

    def store_passages(self, batch: Sequence[IncomingMessage]) -> list[IncomingMessage]:
        """An Ingest's writer (`PassageDecisions.store_passages`)."""
        return self.decisions.store_passages(batch)

    async def on_messages(self, batch: Sequence[IncomingMessage]) -> None:
        """The ingest handler (`PassageDecisions.on_messages`)."""
        await self.decisions.on_messages(batch)

    def handle_result(self, msg: CommandResult) -> None:
        self.decisions.handle_result(msg)

    def decide_passage(self, msg: Passage, gate_id: str | None) -> Decision:
        return self.decisions.decide_passage(msg, gate_id)

    def decide_readings(
        self,
        gate_id: str,
        direction: Direction,
        containers: Sequence[ContainerReading],
        plate: PlateReading | None,
        at: datetime,
    ) -> Decision:
        return self.decisions.decide_readings(gate_id, direction, containers, plate, at)

    def handle_passage(self, msg: Passage) -> GateCommand | None:
        """Decide one passage and record everything; the command to publish, if any."""
        return self.decisions.handle_passage(msg)

    def move_trip(self, conn: Any, decision: Decision, at: datetime) -> None:
        self.decisions.move_trip(conn, decision, at)

    def publish(self, kind: Kind, command: SignedCommand) -> None:
        self.decisions.publish(kind, command)

    # ---- officer actions (server.gates.officer) -----------------------------------------

    def record_release(
        self,
        declaration_id: str,
        release_id: str | None,
        released_at: datetime | None,
        inspect: bool,
        actor: str,
    ) -> dict[str, Any]:
        return self.officer.record_release(declaration_id, release_id, released_at, inspect, actor)

    def override(
        self, passage_id: str, action: OverrideAction, comment: str, actor: str
    ) -> dict[str, Any]:
        return self.officer.override(passage_id, action, comment, actor)

    # ---- remote unseal (server.gates.unseal) --------------------------------------------

    def unseal(self, trip_id: str, actor: str, comment: str) -> list[dict[str, Any]]:
        return self.remote_unseal.unseal(trip_id, actor, comment)

    # ---- queries ------------------------------------------------------------------------

    def passages(self, query: PassageQuery) -> list[dict[str, Any]]:
        return self.gates.list_passages(query)

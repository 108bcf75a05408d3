"""Gate passages in, decisions and signed commands out, each recorded in the audit log
with its change (`PassageDecisions`, one part of `server.gates.service.GateService`).

`PassageDecisions.on_messages` is an ingest handler: for every fresh `passage` it gathers
the facts of the open trips at that gate, calls the pure `decide`, and in one write
transaction stores the passage with its decision and reasons, moves the trip
(departure `open` → `in_transit`; arrival → `released` or `held`), stores the signed
command, raises GATE_MISMATCH when the passage matches no declaration or differs from
it, and appends the audit entry. Only then is the command published. `command/result`
answers are stored against their command.

On the gate worker's connection of passages only (`ingest.passages: process`), and on
the server's one connection (`shared`), `store_passages` is that Ingest's writer: the
passage's own message row (its (node, seq), exactly once) goes into the decision's
transaction, so that a passage takes SQLite's one writer lock once, not twice — each
time it may wait behind a batch of positions (docs/gates.md#speed).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from contract.ids import format_ts, utc_now
from contract.payloads import (
    CommandResult,
    ContainerReading,
    GateCommand,
    Passage,
    PlateReading,
    SignedCommand,
)
from contract.topics import Kind
from server import judge_marks
from server.alarms import AlarmService
from server.audit import append as audit_append
from server.audit import write_transaction
from server.gates.appointment_book import AppointmentBook
from server.gates.appointments import Direction, decide_appointment
from server.gates.commands import CommandSigner, Publisher, SigningUnavailable
from server.gates.config import GatesSettings
from server.gates.decide import (
    JUDGING,
    Decision,
    Reason,
    TripFacts,
    decide,
    match_candidates,
)
from server.gates.store import GateStore, decision_row
from server.geo import Geography
from server.judge_order import JUDGED_STATUSES
from server.lock_secrets import LockSecrets
from server.store import Store
from server.store.database import IncomingMessage

log = logging.getLogger(__name__)

SYSTEM = "system"
#: Passages dropped before storage because their node is not a configured gate.
DROPPED_PASSAGES = "bondwatch_passages_dropped_total"
GATE_MISMATCH = "GATE_MISMATCH"
MISMATCH_SEVERITY = "major"
#: How often a passage held for the judge looks again whether it has caught up.
JUDGE_POLL_S = 0.02
#: The trip has arrived: "not arrived within the time limit" no longer holds (docs/rules.md).
ENDS_AT_ARRIVAL = "TRANSIT_OVERDUE"


class PassageDecisions:
    """The passages of a server process (or of its gate worker); thread-safe (each
    operation is its own transaction)."""

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
        """`inline`: decide passages in the event loop's own thread rather than a worker
        thread — for the gate worker, whose loop does nothing else: a passage then wakes
        no other thread on its way to the command."""
        self.store = store
        self._inline = inline
        self.gates = GateStore(store.engine)
        self.appointments = AppointmentBook(store.engine, geography)
        self.geography = geography
        self.settings = settings
        self.signer = signer
        self.publisher = publisher
        self.alarms = alarms
        self.lock_secrets = lock_secrets
        # Waiting for the judge helps only where passages have an ingest of their own (the
        # gate worker): on the server's one connection the truck's last positions may be
        # in the passage's own batch, handed to the judge only after it is written.
        self._judge_wait_s = settings.judge_wait_s if inline else 0.0
        self._node_to_gate = dict(settings.nodes)
        self._gate_to_node = {gate: node for node, gate in settings.nodes.items()}
        self._unknown_nodes: set[str] = set()
        self._warned_unsigned = False
        self._listeners: list[Callable[[str], None]] = []
        self._drop_listeners: list[Callable[[str], None]] = []
        # Passages decided and recorded by `store_passages`, waiting for `on_messages`
        # to publish their command (None: recorded, nothing to send).
        self._recorded: dict[str, GateCommand | None] = {}

    def add_listener(self, callback: Callable[[str], None]) -> None:
        """Call `callback(passage_id)` after each passage is decided and recorded."""
        self._listeners.append(callback)

    def notify_passage(self, passage_id: str) -> None:
        """Tell the listeners (the console's live stream) that a passage changed."""
        for listener in self._listeners:
            listener(passage_id)

    def add_drop_listener(self, callback: Callable[[str], None]) -> None:
        """Call `callback(node_id)` for each passage dropped unstored because its node is
        not a configured gate (`store_passages`)."""
        self._drop_listeners.append(callback)

    # ---- gate ids and node ids ----------------------------------------------------------

    def gate_of_node(self, node_id: str) -> str | None:
        """The geography's gate id for a gate controller's node id."""
        gate_id = self._node_to_gate.get(node_id, node_id)
        try:
            self.geography.gate(gate_id)
        except KeyError:
            return None
        return gate_id

    def node_of_gate(self, gate_id: str) -> str:
        return self._gate_to_node.get(gate_id, gate_id)

    # ---- ingest handler -----------------------------------------------------------------

    def store_passages(self, batch: Sequence[IncomingMessage]) -> list[IncomingMessage]:
        """An Ingest's writer (`Ingest(writer=…)`): store `batch` and return what was new,
        as `Store.store_messages` does, each passage decided and recorded in the same
        transaction as its message row. A passage whose decision fails is stored
        undecided, and `on_messages` tries it once more.

        A passage from a node that is not a configured gate is dropped first: not
        stored, so neither streamed nor answered; only counted (`add_drop_listener`)
        and logged once per node. The broker's access list lets only gate accounts
        publish passages; this keeps out a gate account of another site's registry."""
        batch = [
            item
            for item in batch
            if not isinstance(item.message, Passage) or self._from_a_gate(item.message)
        ]
        fresh = self.store.store_messages([i for i in batch if not isinstance(i.message, Passage)])
        for item in batch:
            msg = item.message
            if not isinstance(msg, Passage):
                continue
            try:
                new, command = self._handle_passage(msg, stored_as=item)
            except Exception:
                log.exception("passage %s from %s: not decided", msg.passage_id, msg.node_id)
                fresh.extend(self.store.store_messages([item]))
                continue
            if new:
                self._recorded[msg.passage_id] = command
                fresh.append(item)
        return fresh

    def _from_a_gate(self, msg: Passage) -> bool:
        if self.gate_of_node(msg.node_id) is not None:
            return True
        if msg.node_id not in self._unknown_nodes:
            self._unknown_nodes.add(msg.node_id)
            log.warning(
                "passage %s from %s dropped: not a configured gate (logged once per node)",
                msg.passage_id,
                msg.node_id,
            )
        for callback in self._drop_listeners:
            callback(msg.node_id)
        return False

    async def on_messages(self, batch: Sequence[IncomingMessage]) -> None:
        for item in batch:
            msg = item.message
            if isinstance(msg, Passage):
                if msg.passage_id in self._recorded:
                    command = self._recorded.pop(msg.passage_id)
                elif self._inline:
                    command = self.handle_passage(msg)
                else:
                    command = await asyncio.to_thread(self.handle_passage, msg)
                if command is not None:
                    self.publish("gate", command)
                for listener in self._listeners:
                    listener(msg.passage_id)
            elif isinstance(msg, CommandResult):
                await asyncio.to_thread(self.handle_result, msg)

    def handle_result(self, msg: CommandResult) -> None:
        known = self.gates.record_result(
            msg.command_id, msg.node_id, msg.result, msg.detail, msg.ts
        )
        if known:
            log.info("command %s on %s: %s %s", msg.command_id, msg.node_id, msg.result, msg.detail)
        else:
            log.warning(
                "result %s from %s names unknown command %s",
                msg.result,
                msg.node_id,
                msg.command_id,
            )

    def decide_passage(self, msg: Passage, gate_id: str | None) -> Decision:
        """Gather the facts and decide (no writes)."""
        if gate_id is None:
            text = f"gate controller {msg.node_id} is not a configured gate"
            return Decision("hold", (Reason("unknown_gate", text),))
        return self.decide_readings(gate_id, msg.direction, msg.containers, msg.plate, msg.ts)

    def decide_readings(
        self,
        gate_id: str,
        direction: Direction,
        containers: Sequence[ContainerReading],
        plate: PlateReading | None,
        at: datetime,
    ) -> Decision:
        """Decide readings at `gate_id` at time `at` (a passage's, or an officer's
        correction of them): against the open trips at the gate, and — when no
        declaration matched — against the appointments there (docs/gates.md)."""
        with self.gates.reading() as conn:
            trips = self.gates.trips_at_gate(gate_id, conn)
            matched = {t.trip_id for t in match_candidates(gate_id, containers, plate, trips)}
            enriched = [self.enrich(t, conn, at) if t.trip_id in matched else t for t in trips]
            decision = decide(gate_id, containers, plate, at, enriched)
            if decision.trip_id is not None or "ambiguous" in decision.reason_codes:
                return decision
            reliable_plate = plate.text if plate is not None and not plate.needs_review else None
            near = self.appointments.near(conn, gate_id, reliable_plate, at)
        booked = decide_appointment(gate_id, direction, containers, plate, at, near)
        return booked if booked is not None else decision

    def enrich(self, trip: TripFacts, conn: Connection, at: datetime) -> TripFacts:
        """The facts of `trip` for a passage at `at`."""
        states, unauthenticated = self.gates.lock_look(
            trip.vehicle_id, trip.lock_ids, self.lock_secrets, conn
        )
        unjudged = None
        if trip.status in JUDGED_STATUSES and trip.started_at is not None:
            unjudged = judge_marks.behind(conn, trip.vehicle_id, trip.trip_id, trip.started_at, at)
        return replace(
            trip,
            unjudged=unjudged,
            lock_states=states,
            unauthenticated_locks=unauthenticated,
            seal_alarms=self.gates.seal_alarms(trip.trip_id, conn),
            unresolved_alarms=self.alarms.unresolved_types(trip.trip_id, "major", conn),
            release=self.gates.latest_release(trip.trip_id, conn),
        )

    def handle_passage(self, msg: Passage) -> GateCommand | None:
        """Decide one passage and record everything; the command to publish, if any."""
        return self._handle_passage(msg)[1]

    def _handle_passage(
        self, msg: Passage, stored_as: IncomingMessage | None = None
    ) -> tuple[bool, GateCommand | None]:
        """Decide and record; with `stored_as`, its message row goes into the same
        transaction. (False, None) when that (node, seq) was stored before (nothing
        is written); else (True, the command to publish, if any)."""
        gate_id = self.gate_of_node(msg.node_id)
        if gate_id is None and msg.node_id not in self._unknown_nodes:
            self._unknown_nodes.add(msg.node_id)
            log.warning("passage %s from %s: not a configured gate", msg.passage_id, msg.node_id)
        decision = self._judged_first(msg, gate_id, self.decide_passage(msg, gate_id))
        now = utc_now()
        command = self._sign_gate(msg.node_id, msg.passage_id, msg.lane, decision)
        cleared: int | None = None
        raised: int | None = None
        with write_transaction(self.store.engine, urgent=True) as conn:
            if stored_as is not None and not self.store.store_message_in(conn, stored_as):
                return False, None  # a redelivery: decided when it first came
            if self.gates.passage_exists(conn, msg.passage_id):
                log.info(
                    "passage %s from %s seen before; not decided again", msg.passage_id, msg.node_id
                )
                return True, None
            row = {
                "passage_id": msg.passage_id,
                "gate_node": msg.node_id,
                "gate_id": gate_id,
                "lane": msg.lane,
                "direction": msg.direction,
                "containers": [
                    c.model_dump(mode="json", exclude_none=True) for c in msg.containers
                ],
                "plate": msg.plate.model_dump(mode="json") if msg.plate else None,
                "images": list(msg.images),
                "ts": msg.ts,
                "seq": msg.seq,
                "replayed": msg.replayed,
                "command_id": command.command_id if command else None,
                "decided_at": now,
                **decision_row(decision),
            }
            self.gates.insert_passage(conn, row)
            self.move_trip(conn, decision, msg.ts)
            self._use_appointment(conn, msg, decision)
            if decision.phase == "arrival" and decision.trip_id is not None:
                cleared = self.alarms.clear_in_transaction(
                    conn,
                    decision.trip_id,
                    ENDS_AT_ARRIVAL,
                    msg.ts,
                    f"arrived at {gate_id} (passage {msg.passage_id})",
                )
            if command is not None:
                self.gates.insert_command(
                    conn, "gate", command, decision.action, SYSTEM, msg.passage_id, decision.trip_id
                )
            if decision.mismatch is not None:
                raised = self._raise_mismatch(conn, msg, gate_id, decision)
            audit_append(
                conn,
                SYSTEM,
                "gate.decision",
                "passage",
                msg.passage_id,
                {
                    "gate": gate_id,
                    "gate_node": msg.node_id,
                    "lane": msg.lane,
                    "trip_id": decision.trip_id,
                    "phase": decision.phase,
                    "decision": decision.action,
                    "reasons": decision.reason_texts,
                    "appointment_id": decision.appointment_id,
                    "command_id": command.command_id if command else None,
                    "passage_ts": format_ts(msg.ts),
                },
                now,
            )
        # committed: the live stream hears of the alarms the passage changed
        self.alarms.notify([a for a in (cleared, raised) if a is not None])
        log.info(
            "passage %s at %s lane %s: %s (trip %s, %s) %s",
            msg.passage_id,
            gate_id or msg.node_id,
            msg.lane,
            decision.action,
            decision.trip_id,
            decision.phase,
            "; ".join(decision.reason_texts) or "all checks passed",
        )
        if msg.replayed:  # sent late from the gate's outbox: the truck is long gone
            log.info("passage %s was replayed; its command is recorded, not sent", msg.passage_id)
            return True, None
        return True, command

    def _judged_first(self, msg: Passage, gate_id: str | None, decision: Decision) -> Decision:
        """A decision held only until the judge catches up with the truck's messages
        (reason `judging`), decided again every `JUDGE_POLL_S` for up to
        `gates.judge_wait_s`; what it is then."""
        deadline = time.monotonic() + self._judge_wait_s
        while JUDGING in decision.reason_codes and time.monotonic() < deadline:
            time.sleep(JUDGE_POLL_S)
            decision = self.decide_passage(msg, gate_id)
        return decision

    def _use_appointment(self, conn: Connection, msg: Passage, decision: Decision) -> None:
        """An appointment that released the passage is used (not for a replayed passage:
        it was handled locally long ago, and its barrier stayed down)."""
        if decision.appointment_id is None or decision.action != "open" or msg.replayed:
            return
        if not self.appointments.mark_used(conn, decision.appointment_id, msg.passage_id, msg.ts):
            log.warning(
                "appointment %s was no longer active when passage %s used it",
                decision.appointment_id,
                msg.passage_id,
            )

    def _sign_gate(
        self, node_id: str, passage_id: str, lane: str, decision: Decision
    ) -> GateCommand | None:
        try:
            return self.signer.gate(
                node_id, passage_id, lane, decision.action, decision.reason_texts
            )
        except SigningUnavailable:
            if not self._warned_unsigned:
                self._warned_unsigned = True
                log.warning("no signing key configured: gate decisions are recorded, not sent")
            return None

    def move_trip(self, conn: Any, decision: Decision, at: datetime) -> None:
        if decision.trip_id is None:
            return
        if decision.phase == "departure" and decision.action == "open":
            if self.gates.set_trip_status(
                conn, decision.trip_id, ("declared",), "in_transit", started_at=at
            ):
                log.info("trip %s started at its departure gate at %s", decision.trip_id, at)
        elif decision.phase == "arrival" and JUDGING in decision.reason_codes:
            # arrived, held until its alarms are complete: still judged (its timers no
            # longer run), and decided again then (`server.gates.judged`)
            self.gates.set_trip_status(conn, decision.trip_id, ("in_transit",), "arrived")
        elif decision.phase == "arrival":
            # arrived, and at once released or held (the decision is made on arrival)
            status = "released" if decision.action == "open" else "held"
            self.gates.set_trip_status(
                conn,
                decision.trip_id,
                ("in_transit", "arrived", "held", "released")
                if status == "released"
                else ("in_transit", "arrived", "held"),
                status,
                ended_at=at if status == "released" else None,
            )

    def _raise_mismatch(
        self, conn: Any, msg: Passage, gate_id: str | None, decision: Decision
    ) -> int:
        """Raise (or repeat) GATE_MISMATCH in `conn`'s transaction; the alarm's id."""
        position = None
        if gate_id is not None:
            gate = self.geography.gate(gate_id)
            position = (gate.lon, gate.lat)
        trip_id = decision.trip_id or f"gate:{gate_id or msg.node_id}"[:64]
        vehicle = decision.vehicle_id or (msg.plate.text if msg.plate is not None else "unknown")
        detail = f"passage {msg.passage_id} lane {msg.lane}: {decision.mismatch}"
        outcome = self.alarms.raise_in_transaction(
            conn, trip_id, vehicle, GATE_MISMATCH, MISMATCH_SEVERITY, msg.ts, position, detail
        )
        return outcome.alarm_id

    def publish(self, kind: Kind, command: SignedCommand) -> None:
        if self.publisher is None:
            log.warning(
                "no command publisher: command %s to %s not sent",
                command.command_id,
                command.node_id,
            )
            return
        self.publisher.publish(kind, command)

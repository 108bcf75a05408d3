"""Officer actions on passages and trips, each audited: the declaration system's release
records (a trip held at its arrival gate is judged again with one) and an officer's
override of a gate decision (`OfficerActions`, one part of
`server.gates.service.GateService`). An officer's correction of a reading is
`server.gates.corrections`."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import update

from contract.ids import format_ts, utc_now
from server.audit import append as audit_append
from server.audit import write_transaction
from server.gates.correction_rows import readings_in_force
from server.gates.decide import ReleaseRecord, decide
from server.gates.passages import SYSTEM, PassageDecisions
from server.gates.store import PassageQuery
from server.store import StoreError, schema

log = logging.getLogger(__name__)

OverrideAction = Literal["open", "hold"]


class OfficerActions:
    """Release records and overrides, over the passages' store, signer and publisher."""

    def __init__(self, passages: PassageDecisions) -> None:
        self._passages = passages
        self.store = passages.store
        self.gates = passages.gates
        self.signer = passages.signer

    # ---- release records (the declaration system) -------------------------------------

    def record_release(
        self,
        declaration_id: str,
        release_id: str | None,
        released_at: datetime | None,
        inspect: bool,
        actor: str,
    ) -> dict[str, Any]:
        """Store the declaration system's record, audited. A trip held at its arrival gate
        is judged again with the record (`_after_hold`): released when nothing holds it
        any more — without a command to the gate, see docs/gates.md."""
        if self.gates.declaration(declaration_id) is None:
            raise StoreError("not_found", f"no declaration {declaration_id!r}", "declaration_id")
        now = utc_now()
        row = {
            "declaration_id": declaration_id,
            "release_id": release_id,
            "released_at": released_at,
            "inspect": inspect,
            "recorded_at": now,
            "recorded_by": actor,
        }
        details = {
            "release_id": release_id,
            "released_at": format_ts(released_at) if released_at else None,
            "inspect": inspect,
        }
        record = ReleaseRecord(release_id, released_at, inspect)
        with write_transaction(self.store.engine) as conn:
            self.gates.insert_release(conn, row)
            audit_append(
                conn, actor, "declaration.release", "declaration", declaration_id, details, now
            )
            trip_status, reasons = self._after_hold(conn, declaration_id, record, actor, now)
        log.info(
            "declaration %s: %s by %s",
            declaration_id,
            "inspect" if inspect else f"release {release_id}",
            actor,
        )
        return {
            **details,
            "declaration_id": declaration_id,
            "recorded_at": format_ts(now),
            "recorded_by": actor,
            "trip_status": trip_status,
            "hold_reasons": reasons,
        }

    def _after_hold(
        self,
        conn: Any,
        trip_id: str,
        record: ReleaseRecord,
        actor: str,
        now: datetime,
    ) -> tuple[str | None, list[str]]:
        """A record for a trip held at its arrival gate: decide its held passage again
        with the record and the facts of now. Nothing holds it any more → the trip is
        `released` (its truck passes when it presents itself again, or on an officer's
        override); else it stays `held`. No command is sent either way: the barrier is
        not moved behind the officer's back. (The trip's status, and the reasons that
        still hold it.)"""
        trip = self.store.get_trip(trip_id)
        if trip is None or trip.status != "held":
            return (trip.status if trip else None), []
        held = self.gates.list_passages(PassageQuery(trip_id=trip_id, limit=1))
        if not held or held[0]["phase"] != "arrival":
            return "held", []
        passage = held[0]
        if passage["override_action"] == "hold":
            return "held", [
                f"an officer held passage {passage['passage_id']}: {passage['override_comment']}"
            ]
        facts = next(
            (t for t in self.gates.trips_at_gate(passage["gate_id"], conn) if t.trip_id == trip_id),
            None,
        )
        if facts is None:
            return "held", []
        containers, plate = readings_in_force(passage)  # an officer's correction first
        decision = decide(
            passage["gate_id"],
            containers,
            plate,
            passage["ts"],
            [replace(self._passages.enrich(facts, conn, passage["ts"]), release=record)],
        )
        if decision.action == "hold" or decision.trip_id != trip_id:
            return "held", decision.reason_texts
        self.gates.set_trip_status(conn, trip_id, ("held",), "released")
        audit_append(
            conn,
            SYSTEM,
            "trip.release",
            "trip",
            trip_id,
            {
                "from": "held",
                "to": "released",
                "release_id": record.release_id,
                "recorded_by": actor,
                "held_passage": passage["passage_id"],
                "held_for": passage["reasons"],
                "gate_command": None,
            },
            now,
        )
        log.info(
            "trip %s released by record %s after the hold of passage %s; the gate is not "
            "commanded: the truck passes when it presents itself again",
            trip_id,
            record.release_id,
            passage["passage_id"],
        )
        return "released", []

    # ---- officer override ---------------------------------------------------------------

    def override(
        self, passage_id: str, action: OverrideAction, comment: str, actor: str
    ) -> dict[str, Any]:
        """An officer's decision replaces the server's: recorded, audited, commanded."""
        comment = comment.strip()
        if not comment:
            raise StoreError("invalid", "an override needs a comment", "comment")
        if not actor or actor == SYSTEM:
            raise StoreError("forbidden", f"actor {actor!r} may not override", "actor")
        found = self.gates.get_passage(passage_id)
        if found is None:
            raise StoreError("not_found", f"no passage {passage_id!r}", "passage_id")
        now = utc_now()
        command = self.signer.gate(
            found["gate_node"],
            passage_id,
            found["lane"],
            action,
            [f"officer override: {comment}"],
            now,
        )
        with write_transaction(self.store.engine, urgent=True) as conn:  # a truck waits
            p = schema.passages.c
            conn.execute(
                update(schema.passages)
                .where(p.passage_id == passage_id)
                .values(
                    override_action=action,
                    override_comment=comment,
                    override_by=actor,
                    override_at=now,
                    command_id=command.command_id,
                )
            )
            self.gates.insert_command(
                conn, "gate", command, action, actor, passage_id, found["trip_id"]
            )
            trip_id = found["trip_id"]
            if trip_id is not None and found["phase"] == "departure" and action == "open":
                self.gates.set_trip_status(
                    conn, trip_id, ("declared",), "in_transit", started_at=now
                )
            elif trip_id is not None and found["phase"] == "arrival":
                status = "released" if action == "open" else "held"
                self.gates.set_trip_status(
                    conn,
                    trip_id,
                    ("in_transit", "arrived", "held", "released"),
                    status,
                    ended_at=now if status == "released" else None,
                    reopen=status == "held",
                )
            audit_append(
                conn,
                actor,
                "passage.override",
                "passage",
                passage_id,
                {
                    "action": action,
                    "comment": comment,
                    "previous": found["override_action"] or found["decision"],
                    "trip_id": trip_id,
                    "command_id": command.command_id,
                },
                now,
            )
        log.info("passage %s overridden to %s by %s: %s", passage_id, action, actor, comment)
        self._passages.publish("gate", command)
        result = self.gates.get_passage(passage_id)
        assert result is not None
        return result

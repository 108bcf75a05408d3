"""An officer corrects a held passage's reading, and the server decides it again.

On a held passage an officer may correct a container number — refused unless its ISO
6346 check digit holds (`devices.iso6346`) — or the plate, with a mandatory comment.
The correction is stored beside the OCR reading (table `passage_corrections`; the
passage keeps what the cameras read) and audited `passage.correct` with before and
after. The passage is then decided again with the corrected readings, by the same
`GateService.decide_readings` as any passage (declarations, then appointments), with
the facts of now and the passage's own time:

- the truck still waits in the lane — the gate's retained lane state (`gate/{node}/lane`,
  stored as every edge message) is `hold` or `waiting` for this passage — : a signed
  command is sent, `open` when nothing holds it any more, else `hold` with the reasons
  that remain (the lane shows them), and the trip follows as on a passage;
- the truck has left: the new decision is recorded and no command is sent (the barrier
  is never raised for a lane whose truck may be another). A held arrival that is now
  clean becomes `released` without `ended_at`, as after a release record: the truck
  passes when it presents itself again.

The lane's state is the server's courtesy, not the guard: the gate agent opens only for
its lane's current passage (edge/gate/lane.py).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime
from typing import Any, Final

from sqlalchemy import Connection, select, update

from contract.ids import utc_now
from contract.payloads import ContainerReading, GateCommand, LaneStatus, PlateReading
from devices.iso6346 import why_invalid
from server.alarms import AlarmQuery
from server.audit import append as audit_append
from server.audit import write_transaction
from server.gates.correction_rows import readings_in_force
from server.gates.decide import JUDGING, MISMATCH_CODES, Decision, normalise_plate
from server.gates.service import GATE_MISMATCH, SYSTEM, GateService
from server.gates.store import decision_row
from server.store import StoreError, schema

log = logging.getLogger(__name__)

#: Lane states in which the truck of the lane's current passage stands at the barrier.
WAITING_STATES: Final = ("hold", "waiting")
#: How many of a gate node's newest lane messages are read to find the lane's own.
LANE_MESSAGES_SCANNED: Final = 16
#: A corrected reading is the officer's, not the camera's: certain, and not to review.
CORRECTED_CONFIDENCE: Final = 1.0

_m = schema.edge_messages.c


def corrected_containers(numbers: list[str]) -> list[ContainerReading]:
    """Readings of the officer's numbers, each refused unless its check digit holds."""
    out = []
    for i, raw in enumerate(numbers):
        number = "".join(raw.split()).upper()
        why = why_invalid(number)
        if why is not None:
            raise StoreError("invalid", why, f"containers.{i}")
        out.append(
            ContainerReading(
                number=number,
                confidence=CORRECTED_CONFIDENCE,
                check_digit_ok=True,
                needs_review=False,
            )
        )
    if len({c.number for c in out}) != len(out):
        raise StoreError("invalid", "a container is listed twice", "containers")
    return out


def corrected_plate(text: str) -> PlateReading:
    text = text.strip()
    if not normalise_plate(text):
        raise StoreError("invalid", "the plate has no letters or digits", "plate")
    return PlateReading(text=text, confidence=CORRECTED_CONFIDENCE, needs_review=False)


class PassageCorrections:
    def __init__(self, gates: GateService) -> None:
        self.gates = gates

    def correct(
        self,
        passage_id: str,
        containers: list[str] | None,
        plate: str | None,
        comment: str,
        actor: str,
    ) -> dict[str, Any]:
        """Correct, decide again, record, audit, and command the gate when the truck
        still waits; the passage as `GateStore.get_passage` gives it."""
        comment = comment.strip()
        if not comment:
            raise StoreError("invalid", "a correction needs a comment", "comment")
        if not actor or actor == SYSTEM:
            raise StoreError("forbidden", f"actor {actor!r} may not correct", "actor")
        if containers is None and plate is None:
            raise StoreError("invalid", "correct the containers, the plate, or both", "containers")
        new_containers = corrected_containers(containers) if containers is not None else None
        new_plate = corrected_plate(plate) if plate is not None else None
        found = self.gates.gates.get_passage(passage_id)
        if found is None:
            raise StoreError("not_found", f"no passage {passage_id!r}", "passage_id")
        gate_id = found["gate_id"]
        if gate_id is None:
            raise StoreError("conflict", f"passage {passage_id} is not at a configured gate")
        if found["override_action"] is not None:
            raise StoreError(
                "conflict",
                f"passage {passage_id} was overridden by {found['override_by']}: the override "
                "stands (override again instead)",
            )
        if found["decision"] != "hold":
            raise StoreError("conflict", f"passage {passage_id} is not held: nothing to correct")
        before = found.get("correction") or found  # as the audit shows it
        before_containers, before_plate = readings_in_force(found)
        after_containers = new_containers if new_containers is not None else before_containers
        after_plate = new_plate if new_plate is not None else before_plate
        decision = self.gates.decide_readings(
            gate_id, found["direction"], after_containers, after_plate, found["ts"]
        )
        decision, resolves = _without_own_mismatch(decision, found["reason_codes"])
        lane_state = self.lane_state(found["gate_node"], found["lane"], passage_id)
        waiting = lane_state in WAITING_STATES
        now = utc_now()
        command = None
        if waiting:  # SigningUnavailable propagates: nothing is written
            command = self.gates.signer.gate(
                found["gate_node"],
                passage_id,
                found["lane"],
                decision.action,
                decision.reason_texts,
                now,
            )
        after = {
            "containers": [c.model_dump(mode="json", exclude_none=True) for c in after_containers],
            "plate": after_plate.model_dump(mode="json") if after_plate else None,
        }
        with write_transaction(self.gates.store.engine, urgent=waiting) as conn:
            conn.execute(
                schema.passage_corrections.insert().values(
                    passage_id=passage_id,
                    containers=after["containers"],
                    plate=after["plate"],
                    comment=comment,
                    corrected_by=actor,
                    corrected_at=now,
                    previous_decision=found["decision"],
                    previous_reasons=found["reasons"],
                    decision=decision.action,
                    reasons=decision.reason_texts,
                    reason_codes=decision.reason_codes,
                    command_id=command.command_id if command else None,
                    lane_state=lane_state,
                )
            )
            record_again(conn, self.gates, passage_id, decision, command, actor, now, True)
            self._follow(conn, passage_id, decision, waiting)
            audit_append(
                conn,
                actor,
                "passage.correct",
                "passage",
                passage_id,
                {
                    "comment": comment,
                    "before": {
                        "containers": before["containers"],
                        "plate": before["plate"],
                        "decision": found["decision"],
                        "reasons": found["reasons"],
                    },
                    "after": {
                        **after,
                        "decision": decision.action,
                        "reasons": decision.reason_texts,
                    },
                    "trip_id": decision.trip_id,
                    "appointment_id": decision.appointment_id,
                    "lane_state": lane_state,
                    "command_id": command.command_id if command else None,
                },
                now,
            )
        log.info(
            "passage %s corrected by %s (%s): %s, lane %s, %s",
            passage_id,
            actor,
            comment,
            decision.action,
            lane_state,
            "command sent" if command else "no command: the truck is not waiting",
        )
        if resolves and decision.trip_id is not None:
            self._resolve_mismatch(decision.trip_id, passage_id, comment, actor)
        if command is not None:
            self.gates.publish("gate", command)
        self.gates.notify_passage(passage_id)
        result = self.gates.gates.get_passage(passage_id)
        assert result is not None
        return result

    def _follow(self, conn: Connection, passage_id: str, decision: Decision, sent: bool) -> None:
        """The trip, and the appointment, follow the new decision."""
        now = utc_now()
        if sent:
            self.gates.move_trip(conn, decision, now)
            if decision.appointment_id is not None and decision.action == "open":
                self.gates.appointments.mark_used(conn, decision.appointment_id, passage_id, now)
            return
        trip_id = decision.trip_id
        if trip_id is None or decision.phase != "arrival" or JUDGING in decision.reason_codes:
            return  # (an arrival still waiting for the judge: server.gates.judged decides it)
        if decision.action == "open":
            # a clean arrival: the truck passes when it presents itself again
            self.gates.gates.set_trip_status(conn, trip_id, ("held", "arrived"), "released")
        else:
            self.gates.gates.set_trip_status(conn, trip_id, ("arrived",), "held")

    def _resolve_mismatch(self, trip_id: str, passage_id: str, comment: str, actor: str) -> None:
        """The officer who showed the mismatch to be a misreading acknowledges and clears
        its alarm, with the correction's comment (each step audited, as in the queue)."""
        alarms, _ = self.gates.alarms.find(
            AlarmQuery(state="active", type=GATE_MISMATCH, trip_id=trip_id)
        )
        why = f"passage {passage_id} corrected: {comment}"
        for alarm in alarms:
            try:
                if alarm.status == "active_unack":
                    self.gates.alarms.ack(alarm.id, actor, why)
                self.gates.alarms.officer_clear(alarm.id, actor, why)
            except StoreError as err:  # handled meanwhile in the queue
                log.info("GATE_MISMATCH %s of %s not resolved: %s", alarm.id, trip_id, err)

    def lane_state(self, gate_node: str, lane: str, passage_id: str) -> str | None:
        """The lane's newest reported state when its current passage is `passage_id`;
        `left` when the lane has moved on to another passage or none; None when the gate
        never reported the lane."""
        with self.gates.store.engine.connect() as conn:
            rows = conn.execute(
                select(_m.payload)
                .where(_m.node_id == gate_node, _m.channel == "lane")
                .order_by(_m.seq.desc())
                .limit(LANE_MESSAGES_SCANNED)
            ).scalars()
            for payload in rows:
                status = LaneStatus.model_validate_json(payload)
                if status.lane != lane:
                    continue
                return status.state if status.passage_id == passage_id else "left"
        return None


def record_again(
    conn: Connection,
    gates: GateService,
    passage_id: str,
    decision: Decision,
    command: GateCommand | None,
    actor: str,
    now: datetime,
    corrected: bool = False,
    decided_at: datetime | None = None,
) -> None:
    """Record a held passage's new decision (and its command, if one is sent) in the
    caller's transaction; `StoreError` conflict when the passage is no longer held as
    it was (an officer's correction or override came first, or — `decided_at` — it was
    decided again meanwhile)."""
    values: dict[str, Any] = {**decision_row(decision), "decided_at": now}
    if corrected:
        values["corrected_at"] = now
    if command is not None:
        values["command_id"] = command.command_id
        gates.gates.insert_command(
            conn, "gate", command, decision.action, actor, passage_id, decision.trip_id
        )
    p = schema.passages.c
    query = (
        update(schema.passages)
        .where(p.passage_id == passage_id, p.decision == "hold")
        .where(p.override_action.is_(None))
    )
    if decided_at is not None:
        query = query.where(p.decided_at == decided_at)
    if conn.execute(query.values(**values)).rowcount != 1:
        raise StoreError(
            "conflict", f"passage {passage_id} changed meanwhile: look again", "passage_id"
        )


def _without_own_mismatch(decision: Decision, held_for: list[str]) -> tuple[Decision, bool]:
    """A passage whose reading differed from its declaration raised GATE_MISMATCH, and that
    alarm holds the trip. When the corrected reading matches, the mismatch was a misreading:
    decided without that alarm (which the correcting officer resolves), True."""
    own = [
        r
        for r in decision.reasons
        if r.code == "unresolved_alarm" and r.text.endswith(f" {GATE_MISMATCH}")
    ]
    if decision.mismatch is not None or not own or not set(held_for) & MISMATCH_CODES:
        return decision, False
    reasons = tuple(r for r in decision.reasons if r not in own)
    return replace(decision, action="hold" if reasons else "open", reasons=reasons), True

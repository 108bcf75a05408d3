"""Arrivals held for the judge, decided again once it has caught up.

An arrival whose trip's messages are not all judged yet (`server.judge_marks`) is held
with the reason `judging`, and its trip stays in transit, so that the judge goes on
judging it (`server.gates.passages`). The server looks at such passages every
`every_s` and decides each again, with its readings (an officer's correction's, if
any), the passage's own time and the facts of now, as soon as nothing is `judging` any
more:

- the truck still waits in the lane: a signed command is sent, `open` when nothing
  holds it, else `hold` with the reasons found; the trip is released or held as on a
  passage;
- the truck has left: the decision is recorded, no command is sent; a clean arrival's
  trip becomes `released` without `ended_at` (the truck passes when it presents itself
  again), any other is `held`.

Each is audited `passage.decide_again`. A passage still `judging` after
`DECIDE_AGAIN_WITHIN` is left to the officers (it stays held, with its reason).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta
from typing import Final

from sqlalchemy import Connection, select

from contract.ids import utc_now
from contract.payloads import ContainerReading, PlateReading
from server.audit import append as audit_append
from server.audit import write_transaction
from server.gates.corrections import WAITING_STATES, PassageCorrections, record_again
from server.gates.decide import JUDGING, Decision
from server.gates.service import SYSTEM, GateService
from server.store import StoreError, schema

log = logging.getLogger(__name__)

#: How long after it was made a passage held for the judge is still decided again.
DECIDE_AGAIN_WITHIN: Final = timedelta(hours=1)

_p = schema.passages.c


class JudgedAgain:
    def __init__(self, gates: GateService) -> None:
        self.gates = gates
        self._lanes = PassageCorrections(gates)

    def waiting(self, now: datetime) -> list[str]:
        """Passages held for the judge (and nothing an officer did since), newest last."""
        query = (
            select(_p.passage_id, _p.reason_codes)
            .where(_p.decision == "hold", _p.phase == "arrival")
            .where(_p.override_action.is_(None))
            .where(_p.ts >= now - DECIDE_AGAIN_WITHIN)  # (by its index: an hour's passages)
            .order_by(_p.ts)
        )
        with self.gates.store.engine.connect() as conn:
            return [row.passage_id for row in conn.execute(query) if JUDGING in row.reason_codes]

    def decide_again(self, passage_id: str) -> Decision | None:
        """Decide a passage held for the judge again; the decision recorded, or None when
        the judge has still not caught up (or the passage is no longer held for it)."""
        found = self.gates.gates.get_passage(passage_id)
        if (
            found is None
            or JUDGING not in found["reason_codes"]
            or found["decision"] != "hold"
            or found["override_action"] is not None  # an officer's decision stands
        ):
            return None
        readings = found.get("correction") or found
        containers = [ContainerReading.model_validate(c) for c in readings["containers"]]
        plate = PlateReading.model_validate(readings["plate"]) if readings["plate"] else None
        decision = self.gates.decide_readings(
            found["gate_id"], found["direction"], containers, plate, found["ts"]
        )
        if JUDGING in decision.reason_codes:
            return None
        lane_state = self._lanes.lane_state(found["gate_node"], found["lane"], passage_id)
        waiting = lane_state in WAITING_STATES
        now = utc_now()
        command = None
        if waiting:
            command = self.gates.signer.gate(
                found["gate_node"], passage_id, found["lane"], decision.action,
                decision.reason_texts, now,
            )  # fmt: skip
        with write_transaction(self.gates.store.engine, urgent=waiting) as conn:
            record_again(
                conn, self.gates, passage_id, decision, command, SYSTEM, now,
                decided_at=found["decided_at"],
            )  # fmt: skip
            self._follow(conn, decision, waiting, now)
            audit_append(
                conn,
                SYSTEM,
                "passage.decide_again",
                "passage",
                passage_id,
                {
                    "why": "the judge has caught up with the trip's messages",
                    "before": {"decision": found["decision"], "reasons": found["reasons"]},
                    "after": {"decision": decision.action, "reasons": decision.reason_texts},
                    "trip_id": decision.trip_id,
                    "lane_state": lane_state,
                    "command_id": command.command_id if command else None,
                },
                now,
            )
        log.info(
            "passage %s decided again, its trip judged: %s (%s), lane %s, %s",
            passage_id,
            decision.action,
            "; ".join(decision.reason_texts) or "all checks passed",
            lane_state,
            "command sent" if command else "no command: the truck is not waiting",
        )
        if command is not None:
            self.gates.publish("gate", command)
        self.gates.notify_passage(passage_id)
        return decision

    def _follow(self, conn: Connection, decision: Decision, sent: bool, at: datetime) -> None:
        """The trip, arrived and waiting for this decision, follows it."""
        if decision.trip_id is None:
            return
        if sent:
            self.gates.move_trip(conn, decision, at)
            return
        status = "released" if decision.action == "open" else "held"
        self.gates.gates.set_trip_status(conn, decision.trip_id, ("arrived",), status)

    def once(self) -> int:
        """Decide again each passage whose trip the judge has caught up with; how many."""
        decided = 0
        for passage_id in self.waiting(utc_now()):
            try:
                decided += self.decide_again(passage_id) is not None
            except StoreError as err:  # an officer came first
                log.info("passage %s not decided again: %s", passage_id, err)
            except Exception:  # the others are decided all the same
                log.exception("passage %s: deciding it again failed", passage_id)
        return decided

    async def run_forever(self, every_s: float = 1.0) -> None:
        while True:
            await asyncio.sleep(every_s)
            try:
                await asyncio.to_thread(self.once)
            except Exception:
                log.exception("deciding again the arrivals held for the judge failed")

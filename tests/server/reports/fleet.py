"""Trips, gate passages and alarms made through the real services (the store's ingest
path, `GateService`, `AlarmService`), for the report tests and the console's reports page.

`standard_scenario` builds one fortnight of traffic whose report numbers are worked out by
hand in the tests (tests/server/reports/test_api.py, tests/console/test_reports.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from contract.ids import format_ts, parse_ts, utc_now
from contract.payloads import EdgeMessage, Passage, decode_edge
from devices.ocr.iso6346 import with_check_digit
from server import assembly
from server.alarms import AlarmService
from server.gates.decide import Decision
from server.gates.service import GateService
from server.judge import Judge
from server.services import Services
from server.store.database import IncomingMessage
from tests.lock_reports import signed_lock_fields

HUANGPU, NANSHA, BAIYUN = "G-HUANGPU-1", "G-NANSHA-2", "G-BAIYUN-1"
HP_BY, NS_BY = "R-HP-BY", "R-NS-BY"
#: The fortnight of `standard_scenario`, as the console sends it (Asia/Shanghai).
WINDOW_FROM = "2026-11-01T00:00:00+08:00"
WINDOW_TO = "2026-11-16T00:00:00+08:00"


def fleet_lock_id(n: int) -> str:
    """The lock trip `n` of the fleet carries."""
    return f"EL-{n:03d}"


#: The secrets of the fleet's locks (trips 1–20), as the server holding the fleet is
#: configured with them (`gates.lock_secrets_file`): its gates authenticate their reports.
FLEET_LOCK_SECRETS = {
    fleet_lock_id(n): f"fleet-lock-{fleet_lock_id(n)}-secret" for n in range(1, 21)
}


def at(text: str) -> datetime:
    """`2026-11-03T09:00` read in Asia/Shanghai (UTC+8, no daylight saving)."""
    return parse_ts(text + ":00+08:00")


@dataclass(frozen=True)
class TripRef:
    n: int
    route: str
    trip_id: str
    vehicle_id: str
    lock_id: str
    container: str
    plate: str


@dataclass
class Fleet:
    services: Services
    gates: GateService
    seq: dict[str, int] = field(default_factory=dict)
    judge: Judge | None = None

    @property
    def alarms(self) -> AlarmService:
        return self.services.alarms

    def feed(self, channel: str, node_id: str, ts: datetime, **fields: object) -> EdgeMessage:
        """Store an edge message as the ingest does and return it."""
        seq = self.seq.get(node_id, 0) + 1
        self.seq[node_id] = seq
        raw = json.dumps({"node_id": node_id, "seq": seq, "ts": format_ts(ts), **fields})
        message = decode_edge(channel, raw)
        stored = self.services.store.store_messages(
            [IncomingMessage(channel, message, raw, utc_now())]
        )
        assert len(stored) == 1
        return message

    def declare(
        self, n: int, route: str, origin: str, time_limit_min: int = 120, credit: str = "general"
    ) -> TripRef:
        ref = TripRef(
            n=n,
            route=route,
            trip_id=f"D-RPT-{n:03d}",
            vehicle_id=f"TRK-{n:03d}",
            lock_id=fleet_lock_id(n),
            container=with_check_digit(f"BWTU{n:06d}"),
            plate=f"粤B{n:05d}",
        )
        body = {
            "declaration_id": ref.trip_id,
            "enterprise": {"code": f"44019600{n:02d}", "name": "示范供应链", "credit": credit},
            "vehicle_id": ref.vehicle_id,
            "plate": ref.plate,
            "lock_ids": [ref.lock_id],
            "containers": [ref.container],
            "origin_gate": origin,
            "destination_gate": BAIYUN,
            "route_id": route,
            "time_limit_min": time_limit_min,
        }
        self.services.store.create_declaration(body, utc_now(), "decl-system")
        return ref

    def passage(
        self, gate: str, passage_id: str, ts: datetime, container: str, plate: str
    ) -> Decision:
        msg = self.feed(
            "passage",
            gate,
            ts,
            passage_id=passage_id,
            lane="L1",
            direction="in",
            containers=[
                {"number": container, "confidence": 0.98, "check_digit_ok": True,
                 "needs_review": False}
            ],
            plate={"text": plate, "confidence": 0.95, "needs_review": False},
            images=[f"gate://{passage_id}/front.jpg"],
        )  # fmt: skip
        assert isinstance(msg, Passage)
        self.judge_ticks()
        self.gates.handle_passage(msg)
        row = self.gates.gates.get_passage(passage_id)
        assert row is not None
        return Decision(row["decision"], (), row["trip_id"], row["phase"])

    def judge_ticks(self) -> None:
        """The server's judge, at its timer tick, takes up the trips that started (an
        arrival waits until it has: docs/gates.md#judged-first)."""
        if self.judge is None:
            svc = self.services
            self.judge = assembly.judge(
                svc.config, svc.store, svc.geography, svc.alarms, svc.lock_secrets
            )
        self.judge.follow_trips()

    def depart(self, ref: TripRef, ts: datetime) -> Decision:
        """The lock's signed `sealed` report 10 minutes before, then the departure gate."""
        sealed = (ts - timedelta(minutes=10)).replace(microsecond=0)  # a lock's whole seconds
        secret = FLEET_LOCK_SECRETS[ref.lock_id]
        report = signed_lock_fields(secret, ref.lock_id, sealed, "sealed", "sealed", 90)
        self.feed("lock", ref.vehicle_id, sealed, **report)
        origin = {HP_BY: HUANGPU, NS_BY: NANSHA}[ref.route]
        return self.passage(origin, f"P-{ref.n:03d}-DEP", ts, ref.container, ref.plate)

    def arrive(self, ref: TripRef, ts: datetime, released: bool = True) -> Decision:
        if released:
            self.gates.record_release(
                ref.trip_id, f"R-{ref.n:03d}", ts - timedelta(minutes=5), False, "decl-system"
            )
        return self.passage(BAIYUN, f"P-{ref.n:03d}-ARR", ts, ref.container, ref.plate)

    def alarm(
        self, ref: TripRef, alarm_type: str, severity: str, ts: datetime, repeats: int = 1
    ) -> int:
        """Raise an alarm as the rules do, repeated `repeats` times a minute apart."""
        alarm_id = 0
        for i in range(repeats):
            outcome = self.alarms.raise_(
                ref.trip_id, ref.vehicle_id, alarm_type, severity,
                ts + timedelta(minutes=i), None, f"{alarm_type} test {i + 1}",
            )  # fmt: skip
            alarm_id = outcome.alarm_id
        return alarm_id


def standard_scenario(fleet: Fleet) -> None:
    """A fortnight (WINDOW_FROM … WINDOW_TO) at the demo's three gates:

    route R-HP-BY: trips 1, 2, 3 arrive after 50, 70 and 95 min (3 is held: no release
    record; an officer overrides it to open); trip 4 leaves and is still on its way;
    trip 6 went and came back in October (outside the window). Route R-NS-BY: trip 5
    arrives after 130 min. A stranger's truck at Huangpu is held (GATE_MISMATCH).
    Alarms are raised after every gate decision, so none of them changes a decision.
    """
    t1 = fleet.declare(1, HP_BY, HUANGPU)
    t2 = fleet.declare(2, HP_BY, HUANGPU)
    t3 = fleet.declare(3, HP_BY, HUANGPU)
    t4 = fleet.declare(4, HP_BY, HUANGPU)
    t5 = fleet.declare(5, NS_BY, NANSHA, time_limit_min=180)
    t6 = fleet.declare(6, HP_BY, HUANGPU)
    legs = [
        (t6, at("2026-10-20T10:00"), 60),
        (t1, at("2026-11-03T09:00"), 50),
        (t2, at("2026-11-05T14:00"), 70),
        (t5, at("2026-11-08T08:00"), 130),
        (t3, at("2026-11-11T00:30"), 95),
    ]
    for ref, departed, minutes in legs:
        assert fleet.depart(ref, departed).action == "open"
        arrived = departed + timedelta(minutes=minutes)
        decision = fleet.arrive(ref, arrived, released=ref is not t3)
        assert decision.action == ("hold" if ref is t3 else "open"), (ref, decision)
    assert fleet.depart(t4, at("2026-11-12T10:00")).action == "open"
    stranger = fleet.passage(HUANGPU, "P-STRANGER", at("2026-11-06T11:00"),
                             with_check_digit("MSKU123456"), "粤A99999")  # fmt: skip
    assert stranger.action == "hold" and stranger.trip_id is None
    fleet.gates.override("P-003-ARR", "open", "单证已补交，人工放行", "supervisor.one")

    fleet.alarm(t4, "LOCK_LOW_BATTERY", "warning", at("2026-11-01T00:00"))  # at the start: in
    fleet.alarm(t2, "LOCK_TAMPER", "critical", at("2026-11-05T14:30"))
    fleet.alarm(t5, "UNPLANNED_STOP", "minor", at("2026-11-08T09:00"))
    fleet.alarm(t3, "ROUTE_DEVIATION", "major", at("2026-11-11T01:00"), repeats=3)
    fleet.alarm(t4, "OVERSPEED", "minor", at("2026-11-12T10:40"))
    fleet.alarm(t4, "LOCK_TAMPER", "critical", at("2026-11-12T11:00"))
    fleet.alarm(t5, "LOCK_LOW_BATTERY", "warning", at("2026-11-16T00:00"))  # at the end: out
    fleet.alarm(t6, "ROUTE_DEVIATION", "major", at("2026-10-20T10:30"))  # October: out

"""DEVICE_CLOCK_AHEAD (server.alarms.clock_ahead): one alarm per episode of `clock_ahead`
refusals, cleared when the node's messages are accepted again or after a quiet period —
on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from contract.payloads import Position
from server.alarms import AlarmQuery, AlarmService
from server.alarms.clock_ahead import ALARM, ClockAheadAlarms
from server.ingest import Rejected
from server.store import Store
from server.store.database import IncomingMessage
from tests.server.alarms.conftest import T0
from tests.server.conftest import declaration


def refused(node: str, at_s: float, reason: str = "clock_ahead") -> Rejected:
    at = T0 + timedelta(seconds=at_s)
    return Rejected(
        "position", node, "truck", reason, "ts is 1:00:00 ahead", at, at + timedelta(hours=1)
    )


def accepted(node: str, at_s: float, seq: int = 1) -> IncomingMessage:
    at = T0 + timedelta(seconds=at_s)
    fix = Position.model_validate(
        {"node_id": node, "seq": seq, "ts": at, "lat": 23.1, "lon": 113.4, "fix": "3d"}
    )
    return IncomingMessage("position", fix, fix.to_json().decode(), at, "truck")


def episodes(alarms: AlarmService, node: str) -> list[tuple[str, str, int, str]]:
    found, _ = alarms.find(AlarmQuery(type=ALARM, vehicle_id=node))
    return sorted((a.trip_id, a.status, a.count, a.severity) for a in found)


def test_one_alarm_per_episode_cleared_when_accepted_again(store: Store, alarms: AlarmService):
    handler = ClockAheadAlarms(store, alarms)
    for n in range(50):  # a device flooding future-dated messages: one alarm
        handler.on_rejected(refused("TRK-9", n))
    handler.on_rejected(refused("TRK-9", 60, reason="bad_json"))  # other reasons: no alarm
    handler.on_rejected(refused("TRK-5", 0, reason="too_long"))
    handler.flush()
    assert episodes(alarms, "TRK-9") == [("node:TRK-9", "active_unack", 1, "major")]
    assert episodes(alarms, "TRK-5") == []
    asyncio.run(handler.on_messages([accepted("TRK-5", 70), accepted("TRK-9", 80)]))
    handler.flush()
    assert episodes(alarms, "TRK-9") == [("node:TRK-9", "cleared_unack", 1, "major")]
    # The clock runs ahead again: a new episode, a new alarm.
    handler.on_rejected(refused("TRK-9", 200))
    handler.flush()
    assert [s for _, s, _, _ in episodes(alarms, "TRK-9")] == ["active_unack", "cleared_unack"]


def test_raised_on_the_open_trip_and_ended_by_a_quiet_period(store: Store, alarms: AlarmService):
    store.create_declaration(declaration(declaration_id="D-CLK", vehicle_id="TRK-7"), T0)
    handler = ClockAheadAlarms(store, alarms, quiet_s=300)
    handler.on_rejected(refused("TRK-7", 0))
    handler.on_rejected(refused("TRK-7", 100))
    handler.flush()
    assert episodes(alarms, "TRK-7") == [("D-CLK", "active_unack", 1, "major")]
    assert handler.tick(T0 + timedelta(seconds=399)) == []  # 299 s since the last refusal
    for done in handler.tick(T0 + timedelta(seconds=400)):
        done.result()
    assert episodes(alarms, "TRK-7") == [("D-CLK", "cleared_unack", 1, "major")]


def test_an_active_episode_survives_a_restart(store: Store, alarms: AlarmService):
    first = ClockAheadAlarms(store, alarms)
    first.on_rejected(refused("TRK-3", 0))
    first.flush()
    again = ClockAheadAlarms(store, alarms)  # a restarted server: the alarm is still active
    again.flush()
    again.on_rejected(refused("TRK-3", 30))  # same episode: no second raise, no repeat
    again.flush()
    assert episodes(alarms, "TRK-3") == [("node:TRK-3", "active_unack", 1, "major")]
    asyncio.run(again.on_messages([accepted("TRK-3", 40)]))
    again.flush()
    assert episodes(alarms, "TRK-3") == [("node:TRK-3", "cleared_unack", 1, "major")]

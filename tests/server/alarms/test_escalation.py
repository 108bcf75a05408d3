"""Server-side escalation of unacknowledged alarms, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import threading
from datetime import datetime, timedelta
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import select, text

from contract.ids import utc_now
from server.alarms import Alarm, AlarmService
from server.alarms.escalation import EscalationPolicy, Escalator, escalate_due
from server.app import create_app, escalator_for
from server.audit import AuditQuery, list_entries, verify
from server.console.config import ConsoleSettings
from server.store import Store, schema
from server.store.migrations import MIGRATIONS, current_version
from tests.server.alarms.conftest import T0
from tests.server.assembled import assemble, server_config
from tests.server.auth.session import login_as

FIVE_MIN = EscalationPolicy(timedelta(minutes=5))


def raise_at(
    alarms: AlarmService,
    at: datetime,
    trip: str = "TRIP-1",
    kind: str = "LOCK_TAMPER",
    severity: str = "critical",
) -> int:
    return alarms.raise_(trip, "TRK-1", kind, severity, at, (113.4, 23.1), "rope cut").alarm_id


def escalation_events(alarm: Alarm) -> list[tuple[str, str | None, str]]:
    assert alarm.history is not None
    return [(e.actor, e.from_status, e.to_status) for e in alarm.history if e.action == "escalate"]


def test_due_critical_alarm_is_escalated_once_with_history_audit_and_notice(
    store: Store, alarms: AlarmService
) -> None:
    heard: list[Alarm] = []
    alarms.add_listener(heard.append)
    due = raise_at(alarms, T0)
    young = raise_at(alarms, T0 + timedelta(minutes=2), trip="TRIP-2")
    now = T0 + timedelta(minutes=5)  # exactly the delay after `due` was first raised

    assert escalate_due(alarms, FIVE_MIN, now) == [due]

    found = alarms.get(due)
    assert found is not None
    assert found.escalated_at == now and found.status == "active_unack"
    assert escalation_events(found) == [("system", "active_unack", "active_unack")]
    step = next(e for e in found.history or () if e.action == "escalate")
    assert step.at == now and step.detail == "unacknowledged 5 min after it was first raised"
    assert found.as_json()["escalated_at"] == "2026-11-23T08:05:00.000Z"
    assert [(a.id, a.escalated_at) for a in heard] == [(due, now)]
    other = alarms.get(young)
    assert other is not None and other.escalated_at is None and escalation_events(other) == []
    entries, total = list_entries(store.engine, AuditQuery(action="alarm.escalate"))
    assert total == 1
    entry = entries[0]
    assert (entry.actor, entry.object_type, entry.object_id) == ("system", "alarm", str(due))
    details = json.loads(entry.details)
    assert (details["type"], details["trip_id"], details["after_min"]) == (
        "LOCK_TAMPER",
        "TRIP-1",
        5,
    )
    assert verify(store.engine).ok

    # Later checks: the escalated one never again; the younger one when its time comes.
    assert escalate_due(alarms, FIVE_MIN, now + timedelta(seconds=30)) == []
    later = T0 + timedelta(minutes=7)
    assert escalate_due(alarms, FIVE_MIN, later) == [young]
    assert escalate_due(alarms, FIVE_MIN, later + timedelta(hours=1)) == []
    again = alarms.get(due)
    assert again is not None and again.escalated_at == now and len(escalation_events(again)) == 1


def test_only_unacknowledged_active_alarms_of_escalating_severities(
    store: Store, alarms: AlarmService
) -> None:
    acked = raise_at(alarms, T0, trip="T-ACK")
    alarms.ack(acked, "officer.one", "on it")
    cleared = raise_at(alarms, T0, trip="T-CLR")
    alarms.clear("T-CLR", "LOCK_TAMPER", T0 + timedelta(minutes=1), "sealed again")
    major = raise_at(alarms, T0, trip="T-MAJ", kind="ROUTE_DEVIATION", severity="major")
    critical = raise_at(alarms, T0, trip="T-CRIT")
    now = T0 + timedelta(hours=1)

    assert escalate_due(alarms, FIVE_MIN, now) == [critical]
    both = EscalationPolicy(timedelta(minutes=5), ("critical", "major"))
    assert escalate_due(alarms, both, now) == [major]
    assert escalate_due(alarms, EscalationPolicy(timedelta(minutes=5), ()), now) == []
    for alarm_id in (acked, cleared):
        found = alarms.get(alarm_id)
        assert found is not None and found.escalated_at is None

    # Acknowledging an escalated alarm keeps when it was escalated (history stays true).
    alarms.ack(critical, "officer.one", "called the driver")
    found = alarms.get(critical)
    assert found is not None and found.status == "active_ack" and found.escalated_at == now
    assert [e.action for e in found.history or ()] == ["raise", "escalate", "ack"]


def test_a_repeat_that_makes_an_alarm_older_or_critical_escalates_it(
    store: Store, alarms: AlarmService
) -> None:
    first = raise_at(alarms, T0 + timedelta(minutes=10), kind="ROUTE_DEVIATION", severity="major")
    now = T0 + timedelta(minutes=12)
    assert escalate_due(alarms, FIVE_MIN, now) == []
    # A late repeat from before (buffered in a tunnel), now critical.
    again = alarms.raise_("TRIP-1", "TRK-1", "ROUTE_DEVIATION", "critical", T0, None, "far out")
    assert again.alarm_id == first and not again.new
    assert escalate_due(alarms, FIVE_MIN, now) == [first]


def test_concurrent_checks_escalate_each_alarm_exactly_once(
    store: Store, alarms: AlarmService
) -> None:
    ids = {raise_at(alarms, T0, trip=f"TRIP-{i}") for i in range(30)}
    now = T0 + timedelta(minutes=6)
    results: list[list[int]] = []
    errors: list[BaseException] = []
    start = threading.Barrier(3)

    def check() -> None:
        try:
            start.wait()
            results.append(escalate_due(AlarmService(store.engine), FIVE_MIN, now))
        except BaseException as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=check) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    escalated = [alarm_id for result in results for alarm_id in result]
    assert sorted(escalated) == sorted(ids)  # each once, whoever did it
    with store.engine.connect() as conn:
        steps = conn.execute(
            select(schema.alarm_events.c.alarm_id).where(schema.alarm_events.c.action == "escalate")
        ).all()
    assert sorted(r.alarm_id for r in steps) == sorted(ids)
    assert verify(store.engine).ok


def test_periodic_task_with_a_short_delay_publishes_the_change(
    store: Store, alarms: AlarmService
) -> None:
    heard: list[Alarm] = []
    alarms.add_listener(heard.append)
    settings = ConsoleSettings(escalate_after_min=0.01, escalation_check_s=0.2)  # 0.6 s
    escalator = escalator_for(alarms, settings)
    assert escalator.policy == EscalationPolicy(timedelta(seconds=0.6), ("critical",))
    alarm_id = raise_at(alarms, utc_now())

    async def run() -> None:
        task = asyncio.create_task(escalator.run_forever())
        try:
            for _ in range(100):
                await asyncio.sleep(0.05)
                if heard:
                    break
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    started = utc_now()
    asyncio.run(run())
    assert [a.id for a in heard] == [alarm_id]
    found = alarms.get(alarm_id)
    assert found is not None and found.escalated_at is not None
    first_at = found.first_at
    waited = (found.escalated_at - first_at).total_seconds()
    assert 0.6 <= waited < 3.0, waited
    assert (utc_now() - started).total_seconds() < 5


def test_periodic_task_survives_a_failing_check(store: Store, alarms: AlarmService) -> None:
    escalator = Escalator(alarms, FIVE_MIN, 0.05)
    calls: list[int] = []

    def flaky(now: datetime | None = None) -> list[int]:
        calls.append(1)
        if len(calls) < 3:
            raise RuntimeError("database gone")
        return []

    escalator.run_once = flaky  # type: ignore[method-assign]

    async def run() -> None:
        task = asyncio.create_task(escalator.run_forever())
        await asyncio.sleep(0.5)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(run())
    assert len(calls) >= 4  # kept checking after the failures


def test_get_alarms_shows_escalated_at(tmp_path: Path) -> None:
    svc, _ = assemble(server_config(tmp_path))
    try:
        assert svc.alarms is not None
        due = raise_at(svc.alarms, T0)
        fresh = raise_at(svc.alarms, utc_now(), trip="TRIP-2")
        escalate_due(svc.alarms, FIVE_MIN, T0 + timedelta(minutes=5, seconds=1))
        with TestClient(create_app(svc)) as client:
            login_as(client, svc, "officer")
            body = client.get("/api/v1/alarms?state=active").json()
            by_id = {a["id"]: a for a in body}
            assert by_id[due]["escalated_at"] == "2026-11-23T08:05:01.000Z"
            assert by_id[fresh]["escalated_at"] is None
            one = client.get(f"/api/v1/alarms/{due}").json()
            steps = [h for h in one["history"] if h["action"] == "escalate"]
            assert [(h["actor"], h["from_status"], h["to_status"]) for h in steps] == [
                ("system", "active_unack", "active_unack")
            ]
            schema_doc = client.get("/openapi.json").json()["components"]["schemas"]
            assert "escalated_at" in schema_doc["AlarmOut"]["properties"]
    finally:
        svc.store.close()


def test_migration_adds_the_column_to_an_older_database(store_url: str) -> None:
    store = Store.open(store_url)
    raise_at(AlarmService(store.engine), T0)
    with store.engine.begin() as conn:  # back to the schema before migration 6
        conn.execute(text("ALTER TABLE alarms DROP COLUMN escalated_at"))
        conn.execute(text("DELETE FROM schema_migrations WHERE version >= 6"))
    assert current_version(store.engine) == 5
    store.close()

    again = Store.open(store_url)  # migrates
    try:
        assert current_version(again.engine) == max(m.version for m in MIGRATIONS)
        alarms = AlarmService(again.engine)
        assert escalate_due(alarms, FIVE_MIN, T0 + timedelta(minutes=6)) == [1]
        found = alarms.get(1)
        assert found is not None and found.escalated_at == T0 + timedelta(minutes=6)
    finally:
        again.close()

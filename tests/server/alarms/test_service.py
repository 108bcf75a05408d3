import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError

from server.alarms import AlarmQuery, AlarmService
from server.audit import verify
from server.store import Store, StoreError, schema
from tests.server.alarms.conftest import T0


def at(seconds: int) -> datetime:
    return T0 + timedelta(seconds=seconds)


def raise_dev(alarms: AlarmService, second: int = 0, trip: str = "TRIP-1", **over):
    args: dict[str, Any] = {
        "trip_id": trip,
        "vehicle_id": "TRK-1",
        "alarm_type": "ROUTE_DEVIATION",
        "severity": "major",
        "at": at(second),
        "position": (113.40, 23.10),
        "detail": f"312 m outside the corridor at +{second}s",
    }
    args.update(over)
    return alarms.raise_(**args)


def counts(store: Store) -> tuple[int, int, int]:
    with store.engine.connect() as conn:
        return tuple(  # type: ignore[return-value]
            conn.execute(select(func.count()).select_from(t)).scalar_one()
            for t in (schema.alarms, schema.alarm_events, schema.audit_log)
        )


def test_repeat_counts_on_the_active_alarm(alarms):
    first = raise_dev(alarms, 10)
    assert first.new and first.count == 1
    again = raise_dev(alarms, 30, position=(113.5, 23.2), detail="420 m outside")
    late = raise_dev(alarms, 5, position=(113.0, 23.0), detail="replayed fix")
    assert (again.alarm_id, again.new, again.count) == (first.alarm_id, False, 2)
    assert (late.alarm_id, late.count) == (first.alarm_id, 3)
    alarm = alarms.get(first.alarm_id)
    assert alarm.count == 3 and alarm.status == "active_unack"
    assert (alarm.first_at, alarm.last_at) == (at(5), at(30))  # the late repeat widened it
    assert alarm.position == (113.5, 23.2) and alarm.detail == "420 m outside"  # newest kept
    assert [e.action for e in alarm.history] == ["raise"]  # repeats are not transitions
    assert alarm.history[0].actor == "system" and alarm.history[0].to_status == "active_unack"


def test_repeat_keeps_the_more_severe_severity(alarms):
    a = raise_dev(alarms, 0, alarm_type="DEVICE_OFFLINE", severity="minor")
    raise_dev(alarms, 1, alarm_type="DEVICE_OFFLINE", severity="critical")
    raise_dev(alarms, 2, alarm_type="DEVICE_OFFLINE", severity="warning")
    assert alarms.get(a.alarm_id).severity == "critical"


def test_types_and_trips_are_separate_alarms(alarms):
    ids = {
        raise_dev(alarms).alarm_id,
        raise_dev(alarms, alarm_type="OVERSPEED", severity="minor").alarm_id,
        raise_dev(alarms, trip="TRIP-2").alarm_id,
    }
    assert len(ids) == 3


def test_rule_clear_then_a_new_raise_opens_a_new_alarm(alarms, store):
    first = raise_dev(alarms, 0)
    assert alarms.clear("TRIP-1", "ROUTE_DEVIATION", at(60), "back inside the corridor") == (
        first.alarm_id
    )
    assert alarms.clear("TRIP-1", "ROUTE_DEVIATION", at(61), "again") is None  # none active
    cleared = alarms.get(first.alarm_id)
    assert cleared.status == "cleared_unack" and cleared.cleared_at == at(60)
    step = cleared.history[-1]
    assert (step.actor, step.action, step.from_status, step.to_status) == (
        "system",
        "clear",
        "active_unack",
        "cleared_unack",
    )
    assert step.detail == "back inside the corridor"
    second = raise_dev(alarms, 120)
    assert second.new and second.alarm_id != first.alarm_id
    assert counts(store)[2] == 0  # the rules' own raises and clears are not audited


def test_officer_lifecycle_with_history_and_audit(alarms, store):
    a = raise_dev(alarms).alarm_id
    alarms.assign(a, "officer.li", "officer.wang", "please check the detour")
    alarms.ack(a, "officer.wang", "called the driver: road closed")
    alarms.comment(a, "officer.wang", "photos requested")
    done = alarms.officer_clear(a, "officer.wang", "detour confirmed by traffic police")
    assert done.status == "cleared_ack" and done.assignee == "officer.wang"
    assert [(e.action, e.from_status, e.to_status, e.actor) for e in done.history] == [
        ("raise", None, "active_unack", "system"),
        ("assign", "active_unack", "active_unack", "officer.li"),
        ("ack", "active_unack", "active_ack", "officer.wang"),
        ("comment", "active_ack", "active_ack", "officer.wang"),
        ("clear", "active_ack", "cleared_ack", "officer.wang"),
    ]
    assert [c.comment for c in done.comments] == [
        "please check the detour",
        "called the driver: road closed",
        "photos requested",
        "detour confirmed by traffic police",
    ]
    assert done.history[1].detail == "assignee - → officer.wang"
    with store.engine.connect() as conn:
        audit = conn.execute(
            select(schema.audit_log.c.actor, schema.audit_log.c.action).order_by(
                schema.audit_log.c.seq
            )
        ).all()
    assert [tuple(r) for r in audit] == [
        ("officer.li", "alarm.assign"),
        ("officer.wang", "alarm.ack"),
        ("officer.wang", "alarm.comment"),
        ("officer.wang", "alarm.clear"),
    ]
    assert verify(store.engine).ok


def test_unacknowledged_clear_then_ack(alarms):
    a = raise_dev(alarms).alarm_id
    assert alarms.officer_clear(a, "officer.li", "false positive: tunnel").status == (
        "cleared_unack"
    )
    assert alarms.ack(a, "officer.wang", "agreed").status == "cleared_ack"


@pytest.mark.parametrize(
    ("setup", "action"),
    [
        (["ack"], "ack"),
        (["clear"], "clear"),
        (["ack", "clear"], "ack"),
        (["ack", "clear"], "clear"),
        (["ack", "clear"], "assign"),
    ],
)
def test_refused_transitions_change_nothing(alarms, store, setup, action):
    a = raise_dev(alarms).alarm_id
    for step in setup:
        {"ack": alarms.ack, "clear": alarms.officer_clear}[step](a, "officer.li", "step")
    before = (alarms.get(a), counts(store))
    act = {
        "ack": lambda: alarms.ack(a, "officer.li", "again"),
        "clear": lambda: alarms.officer_clear(a, "officer.li", "again"),
        "assign": lambda: alarms.assign(a, "officer.li", "officer.zhao", "take it"),
    }[action]
    with pytest.raises(StoreError) as info:
        act()
    assert info.value.code == "conflict" and info.value.field == "status"
    assert (alarms.get(a), counts(store)) == before


@pytest.mark.parametrize("comment", ["", "   ", None])
def test_every_officer_action_needs_a_comment(alarms, store, comment):
    a = raise_dev(alarms).alarm_id
    before = (alarms.get(a), counts(store))
    for act in (
        lambda: alarms.ack(a, "officer.li", comment),
        lambda: alarms.officer_clear(a, "officer.li", comment),
        lambda: alarms.assign(a, "officer.li", "officer.wang", comment),
        lambda: alarms.comment(a, "officer.li", comment),
    ):
        with pytest.raises(StoreError) as info:
            act()
        assert (info.value.code, info.value.field) == ("invalid", "comment")
    assert (alarms.get(a), counts(store)) == before


def test_unknown_alarm_and_reserved_actor(alarms):
    with pytest.raises(StoreError) as info:
        alarms.ack(999, "officer.li", "x")
    assert info.value.code == "not_found"
    a = raise_dev(alarms).alarm_id
    with pytest.raises(StoreError) as info:
        alarms.ack(a, "system", "pretending to be the rules")
    assert info.value.code == "forbidden"
    assert alarms.get(a).status == "active_unack"


def test_database_refuses_a_second_active_alarm(alarms, store):
    a = raise_dev(alarms).alarm_id
    with store.engine.connect() as conn:
        row = dict(
            conn.execute(select(schema.alarms).where(schema.alarms.c.id == a)).one()._mapping
        )
    row.pop("id")
    with pytest.raises(IntegrityError), store.engine.begin() as conn:
        conn.execute(schema.alarms.insert().values(**row))
    # a cleared one beside it is fine
    with store.engine.begin() as conn:
        conn.execute(schema.alarms.insert().values(**{**row, "status": "cleared_ack"}))


def test_concurrent_raises_make_one_alarm(alarms, store):
    threads, per_thread = 8, 25
    barrier = threading.Barrier(threads)
    outcomes: list[Any] = []
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            barrier.wait()
            for i in range(per_thread):
                outcomes.append(raise_dev(alarms, n * 100 + i))
                outcomes.append(raise_dev(alarms, i, alarm_type="GNSS_LOST", severity="minor"))
        except BaseException as err:  # reported below
            errors.append(err)

    pool = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(timeout=60)
    assert errors == []
    for alarm_type in ("ROUTE_DEVIATION", "GNSS_LOST"):
        found, total = alarms.find(AlarmQuery(type=alarm_type))
        assert total == 1, alarm_type
        assert found[0].count == threads * per_thread
        assert sum(1 for o in outcomes if o.new and o.alarm_id == found[0].id) == 1
    assert counts(store)[1] == 2  # one `raise` event per alarm


def test_concurrent_officer_acks_one_wins(alarms, store):
    a = raise_dev(alarms).alarm_id
    results: list[str] = []
    barrier = threading.Barrier(6)

    def worker(n: int) -> None:
        barrier.wait()
        try:
            alarms.ack(a, f"officer.{n}", "mine")
            results.append("ok")
        except StoreError as err:
            results.append(err.code)

    pool = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(timeout=60)
    assert sorted(results) == ["conflict"] * 5 + ["ok"]
    assert [e.action for e in alarms.get(a).history] == ["raise", "ack"]
    assert counts(store)[2] == 1


def test_find_filters_sorting_and_paging(alarms):
    raise_dev(alarms, 30, trip="T-A", alarm_type="OVERSPEED", severity="minor")
    raise_dev(alarms, 20, trip="T-A", alarm_type="LOCK_TAMPER", severity="critical")
    raise_dev(alarms, 10, trip="T-B", vehicle_id="TRK-2", alarm_type="GNSS_LOST", severity="minor")
    raise_dev(alarms, 40, trip="T-B", vehicle_id="TRK-2")
    cleared = raise_dev(alarms, 50, trip="T-C", alarm_type="LOCK_LOW_BATTERY", severity="warning")
    alarms.clear("T-C", "LOCK_LOW_BATTERY", at(60), "battery replaced")
    found, total = alarms.find(AlarmQuery())
    assert total == 5
    assert [(x.severity, x.type) for x in found] == [
        ("critical", "LOCK_TAMPER"),
        ("major", "ROUTE_DEVIATION"),
        ("minor", "GNSS_LOST"),  # older minor first
        ("minor", "OVERSPEED"),
        ("warning", "LOCK_LOW_BATTERY"),
    ]
    assert alarms.find(AlarmQuery(state="active"))[1] == 4
    assert [x.id for x in alarms.find(AlarmQuery(state="cleared"))[0]] == [cleared.alarm_id]
    assert {x.trip_id for x in alarms.find(AlarmQuery(vehicle_id="TRK-2"))[0]} == {"T-B"}
    assert alarms.find(AlarmQuery(severity="minor", trip_id="T-A"))[1] == 1
    page, total = alarms.find(AlarmQuery(limit=2, offset=2))
    assert total == 5 and [x.type for x in page] == ["GNSS_LOST", "OVERSPEED"]
    tamper = found[0].id
    alarms.assign(tamper, "officer.li", "officer.wang", "yours")
    assert [x.id for x in alarms.find(AlarmQuery(assignee="officer.wang"))[0]] == [tamper]


def test_unresolved_blocks_release_until_cleared_and_acknowledged(alarms):
    tamper = raise_dev(alarms, trip="T-A", alarm_type="LOCK_TAMPER", severity="critical")
    raise_dev(alarms, trip="T-A", alarm_type="OVERSPEED", severity="minor")
    assert [x.type for x in alarms.unresolved("T-A")] == ["LOCK_TAMPER"]
    alarms.clear("T-A", "LOCK_TAMPER", at(5), "shell closed again")
    assert [x.status for x in alarms.unresolved("T-A")] == ["cleared_unack"]
    alarms.ack(tamper.alarm_id, "officer.li", "inspected: seal intact")
    assert alarms.unresolved("T-A") == []
    assert len(alarms.unresolved("T-A", at_least="minor")) == 1


def test_apply_rule_effects(alarms):
    @dataclass(frozen=True)
    class Raise:
        alarm_type: str
        severity: str
        at: datetime
        position: tuple[float, float] | None
        detail: str

    @dataclass(frozen=True)
    class Clear:
        alarm_type: str
        at: datetime
        detail: str

    alarms.apply(
        "TRIP-9",
        "TRK-9",
        [
            Raise("FORBIDDEN_ZONE", "critical", at(0), (113.3, 23.1), "inside Z-1"),
            Raise("FORBIDDEN_ZONE", "critical", at(5), (113.3, 23.1), "inside Z-1"),
            Raise("GNSS_LOST", "minor", at(6), None, "no fix for 120 s"),
            Clear("FORBIDDEN_ZONE", at(9), "left Z-1"),
        ],
    )
    found = {x.type: x for x in alarms.find(AlarmQuery(trip_id="TRIP-9"))[0]}
    assert found["FORBIDDEN_ZONE"].count == 2 and found["FORBIDDEN_ZONE"].status == (
        "cleared_unack"
    )
    assert found["GNSS_LOST"].position is None and found["GNSS_LOST"].vehicle_id == "TRK-9"


def test_naive_times_and_bad_severity_refused(alarms, store):
    with pytest.raises(ValueError, match="time zone"):
        raise_dev(alarms, at=datetime(2026, 1, 1))
    with pytest.raises(StoreError):
        raise_dev(alarms, severity="fatal")
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM alarms")).scalar_one() == 0


def test_repeat_without_a_fix_keeps_the_last_known_position(alarms):
    a = raise_dev(alarms, 0, position=(113.1, 23.1)).alarm_id
    raise_dev(alarms, 10, position=None, detail="no fix")
    alarm = alarms.get(a)
    assert alarm.position == (113.1, 23.1) and alarm.detail == "no fix"


def test_apply_many_is_one_transaction(alarms, store):
    @dataclass(frozen=True)
    class Raise:
        alarm_type: str
        severity: str
        at: datetime
        position: tuple[float, float] | None
        detail: str

    good = Raise("OVERSPEED", "minor", at(0), None, "92 km/h")
    bad = Raise("OVERSPEED", "fatal", at(1), None, "no such severity")
    with pytest.raises(StoreError):
        alarms.apply_many([("T-1", "V-1", [good]), ("T-2", "V-2", [good, bad])])
    assert counts(store) == (0, 0, 0)  # nothing of the batch was kept
    alarms.apply_many([("T-1", "V-1", [good, good]), ("T-2", "V-2", [good])])
    assert sorted((x.trip_id, x.count) for x in alarms.find(AlarmQuery())[0]) == [
        ("T-1", 2),
        ("T-2", 1),
    ]

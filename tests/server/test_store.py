from datetime import UTC, datetime, timedelta

import pytest

from contract.payloads import Health, Position
from server.gates.store import GateStore
from server.store import Store, StoreError, schema
from server.store.database import POSITION_COLUMNS, IncomingMessage
from server.store.migrations import MIGRATIONS, current_version

T0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


def pos(seq: int, node: str = "T1", second: int | None = None, fix: str = "3d") -> IncomingMessage:
    ts = T0 + timedelta(seconds=seq if second is None else second)
    coords = {"lat": 23.0 + seq * 1e-4, "lon": 113.0} if fix != "none" else {}
    msg = Position(node_id=node, seq=seq, ts=ts, fix=fix, **coords)
    return IncomingMessage("position", msg, msg.to_json().decode(), T0)


@pytest.fixture
def store(store_url):
    s = Store.open(store_url)
    yield s
    s.close()


def test_migrations_recorded_and_idempotent(store_url):
    Store.open(store_url).close()
    again = Store.open(store_url)
    assert current_version(again.engine) == max(m.version for m in MIGRATIONS)
    again.close()


def test_each_node_seq_stored_once(store):
    first = store.store_messages([pos(1), pos(2), pos(2)])
    assert [m.message.seq for m in first] == [1, 2]
    second = store.store_messages([pos(2), pos(3), pos(1, node="T2")])
    assert [(m.message.node_id, m.message.seq) for m in second] == [("T1", 3), ("T2", 1)]
    assert store.message_count() == 4


def test_bulk_rows_read_back_as_core_writes_them(store):
    """The driver path (`BulkInsert`) and SQLAlchemy Core write the same values: a batch
    through `store_messages` and the same rows through `insert()` read back equal."""
    fix = Position(
        node_id="T9", seq=1, ts=T0 + timedelta(microseconds=250_000), fix="3d", lat=22.5,
        lon=113.25, alt_m=-3.5, speed_kmh=61.0, course_deg=359.9, sats=14, hdop=0.8,
        replayed=True,
    )  # fmt: skip
    item = IncomingMessage("position", fix, fix.to_json().decode(), T0 + timedelta(seconds=9))
    assert store.store_messages([item]) == [item]
    with store.engine.begin() as conn:
        bulk_edge = conn.execute(schema.edge_messages.select()).one()._asdict()
        bulk_pos = conn.execute(schema.positions.select()).one()._asdict()
        conn.execute(schema.edge_messages.delete())
        conn.execute(schema.positions.delete())
        conn.execute(schema.edge_messages.insert(), [{**bulk_edge}])
        conn.execute(schema.positions.insert(), [{c: getattr(fix, c) for c in POSITION_COLUMNS}])
        core_edge = conn.execute(schema.edge_messages.select()).one()._asdict()
        core_pos = conn.execute(schema.positions.select()).one()._asdict()
    assert bulk_edge == core_edge and bulk_pos == core_pos
    assert bulk_pos["replayed"] is True and bulk_pos["alt_m"] == -3.5
    track = store.track("T9", None, None)
    assert track[0]["ts"] == fix.ts


def test_a_batch_with_a_repeat_stores_the_rest_once(store):
    store.store_messages([pos(2)])
    again = store.store_messages([pos(1), pos(2), pos(3), pos(1)])  # 2 stored, 1 twice
    assert [m.message.seq for m in again] == [1, 3]
    assert [p["seq"] for p in store.track("T1", None, None)] == [1, 2, 3]
    assert store.message_count() == 3
    assert store.store_messages([pos(1), pos(2), pos(3)]) == []  # all repeats
    assert store.message_count() == 3


def test_other_channels_share_the_seq_space(store):
    health = Health(node_id="T1", seq=5, ts=T0, device="gnss", status="ok")
    item = IncomingMessage("health", health, health.to_json().decode(), T0)
    assert len(store.store_messages([item])) == 1
    assert store.store_messages([pos(5)]) == []  # same (node, seq): a repeat, not new


def test_track_in_fix_time_order_with_late_replays(store):
    store.store_messages([pos(1, second=10), pos(2, second=30)])
    store.store_messages([pos(3, second=20)])  # arrived late (outbox replay)
    store.store_messages([pos(4, second=40, fix="none")])
    track = store.track("T1", None, None)
    assert [p["seq"] for p in track] == [1, 3, 2]
    assert track[0]["ts"].tzinfo is not None


def test_latest_positions(store):
    store.store_messages([pos(1), pos(2), pos(1, node="T2", second=99), pos(3, fix="none")])
    latest = {p["node_id"]: p["seq"] for p in store.latest_positions()}
    assert latest == {"T1": 2, "T2": 1}


def test_declaration_conflict_changes_nothing(store):
    body = {"declaration_id": "D1", "vehicle_id": "T1", "route_id": "R1", "time_limit_min": 60}
    store.create_declaration(body, T0)
    with pytest.raises(StoreError) as info:
        store.create_declaration({**body, "vehicle_id": "T9"}, T0)
    assert info.value.code == "conflict" and info.value.field == "declaration_id"
    trip = store.get_trip("D1")
    assert trip is not None and trip.vehicle_id == "T1" and trip.status == "declared"


def test_open_trips_of_many_vehicles_as_one_by_one(store):
    """The batch lookup of the ingest agrees with the single one: the trip on the road
    wins over a newer declared one, a closed trip is no open trip."""
    for i, (vehicle, minute) in enumerate([("T1", 0), ("T1", 5), ("T2", 1), ("T3", 2)]):
        body = {"declaration_id": f"D{i}", "vehicle_id": vehicle, "route_id": "R1",
                "time_limit_min": 60}  # fmt: skip
        store.create_declaration(body, T0 + timedelta(minutes=minute))
    store.start_trip("D0", T0 + timedelta(minutes=10))  # T1: on the road, D1 declared after
    with store.engine.begin() as conn:  # D3 held at a gate: no longer open
        assert GateStore.set_trip_status(conn, "D3", ["declared"], "held")
    vehicles = ["T1", "T2", "T3", "T9"] + [f"X{i}" for i in range(1200)]  # many, one query
    batch = store.open_trips_for_vehicles(vehicles)
    assert {v: t.trip_id for v, t in batch.items()} == {"T1": "D0", "T2": "D2"}
    heads = store.open_trip_heads(vehicles)  # what the judge asks: the same trips
    assert {v: h.trip_id for v, h in heads.items()} == {"T1": "D0", "T2": "D2"}
    assert heads["T1"] == ("D0", "in_transit", True)
    assert heads["T2"] == ("D2", "declared", False)
    for vehicle in vehicles[:4]:
        single = store.open_trip_for_vehicle(vehicle)
        assert batch.get(vehicle) == single


def test_migration_7_fills_the_declaration_gates_of_an_older_database(store_url):
    """A gate finds its trips by indexed columns; an older database gets them from the
    bodies of its declarations."""
    from sqlalchemy import text

    store = Store.open(store_url)
    for i, (origin, dest) in enumerate([("G-A", "G-B"), ("G-B", "G-C"), ("G-C", "G-D")]):
        body = {"declaration_id": f"D{i}", "vehicle_id": f"T{i}", "route_id": "R1",
                "time_limit_min": 60, "origin_gate": origin, "destination_gate": dest}  # fmt: skip
        store.create_declaration(body, T0)
    with store.engine.begin() as conn:  # back to the schema before migration 7
        for name in ("ix_declarations_origin_gate", "ix_declarations_destination_gate"):
            conn.execute(text(f"DROP INDEX {name}"))
        for column in ("origin_gate", "destination_gate"):
            conn.execute(text(f"ALTER TABLE declarations DROP COLUMN {column}"))
        conn.execute(text("DELETE FROM schema_migrations WHERE version >= 7"))
    store.close()

    again = Store.open(store_url)  # migrates
    try:
        assert current_version(again.engine) == max(m.version for m in MIGRATIONS)
        at_b = sorted(t.trip_id for t in GateStore(again.engine).trips_at_gate("G-B"))
        assert at_b == ["D0", "D1"]
        assert GateStore(again.engine).trips_at_gate("G-X") == []
    finally:
        again.close()


def test_migration_8_gives_older_accounts_the_default_time_zone(store_url):
    """Accounts of a database from before migration 8 get the column, empty (= the
    console's default zone), and keep everything else; a zone set afterwards is kept."""
    from sqlalchemy import select, text

    from server.auth.accounts import AccountStore
    from server.auth.config import AuthSettings

    store = Store.open(store_url)
    AccountStore(store.engine, AuthSettings()).create(
        "test", "officer.old", "Old Officer", "officer", "correct horse battery", T0
    )
    with store.engine.begin() as conn:  # back to the schema before migration 8
        conn.execute(text("ALTER TABLE accounts DROP COLUMN time_zone"))
        conn.execute(text("DELETE FROM schema_migrations WHERE version >= 8"))
    assert current_version(store.engine) == 7
    store.close()

    again = Store.open(store_url)  # migrates
    try:
        assert current_version(again.engine) == max(m.version for m in MIGRATIONS)
        accounts = AccountStore(again.engine, AuthSettings())
        old = accounts.get("officer.old")
        assert old is not None and old.time_zone is None and old.display_name == "Old Officer"
        changed = accounts.set_time_zone(old, "Europe/Berlin", T0)
        assert changed.time_zone == "Europe/Berlin"
        with again.engine.connect() as conn:
            names = conn.execute(select(schema.schema_migrations.c.name)).scalars().all()
        assert "accounts: time_zone" in names
    finally:
        again.close()
    third = Store.open(store_url)  # nothing more to do; the zone is still there
    try:
        found = AccountStore(third.engine, AuthSettings()).get("officer.old")
        assert found is not None and found.time_zone == "Europe/Berlin"
    finally:
        third.close()


def test_the_sqlite_datetime_text_is_sqlalchemy_s() -> None:
    """`BulkInsert`'s faster DATETIME text equals SQLAlchemy's own, whatever the value."""
    from datetime import date, timedelta, timezone

    from sqlalchemy.dialects import sqlite as sqlite_dialect

    from server.store.bulk import BulkInsert

    dialect = sqlite_dialect.dialect()
    theirs = schema.positions.c.ts.type.dialect_impl(dialect).bind_processor(dialect)
    assert theirs is not None
    ours = BulkInsert(schema.positions, dialect, ["ts"]).params
    values = [
        datetime(2026, 11, 23, 8, 15, 2, 250_000, tzinfo=UTC),
        datetime(2026, 11, 23, 8, 15, 2, tzinfo=UTC),  # no microseconds: still six digits
        datetime(2026, 11, 23, 16, 15, 2, 1, tzinfo=timezone(timedelta(hours=8))),
        datetime(999, 1, 2, 3, 4, 5, 6),  # naive, a three-digit year
        datetime(9999, 12, 31, 23, 59, 59, 999_999),
        date(2026, 11, 23),  # not a datetime: SQLAlchemy's own processor
    ]
    assert [row[0] for row in ours([v] for v in values)] == [theirs(v) for v in values]
    assert ours([[values[1]]]) == [("2026-11-23 08:15:02.000000",)]

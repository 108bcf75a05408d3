"""Appointments through the REST API and the gate service: who may book, what is refused,
a booked vehicle released with a signed `open`, out of its window held, used twice held,
cancelled, audited, reported."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from contract.ids import format_ts, utc_now
from contract.payloads import GateCommand
from server.alarms import AlarmQuery, AlarmService
from server.audit import verify
from server.config import StorageSettings
from server.gates.appointment_book import NewAppointment
from server.gates.corrections import PassageCorrections
from server.store import schema
from tests.server.auth.session import add_account, login
from tests.server.gates.conftest import GateWorld, gate_world_in, integration_client
from tests.server.gates.test_corrections import correct, lane, pass_misread
from tests.server.gates.test_service import DEST, audit_actions, pass_gate, verify_gate

BOX = "MSKU1234565"
PLATE = "粤B·12345"


def booking(**over: Any) -> dict[str, Any]:
    now = utc_now()
    body: dict[str, Any] = {
        "plate": PLATE,
        "containers": [BOX],
        "gate_id": DEST,
        "direction": "in",
        "window_start": format_ts(now - timedelta(hours=1)),
        "window_end": format_ts(now + timedelta(hours=1)),
        "purpose": "保税仓储 bonded storage delivery",
        "enterprise": {"code": "4401960002", "name": "示范物流"},
    }
    body.update(over)
    return body


def book(client: TestClient, **over: Any) -> Any:
    return client.post("/api/v1/appointments", json=booking(**over))


def stored(world: GateWorld) -> int:
    with world.services.store.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(schema.appointments)).scalar_one())


def test_who_may_book_and_what_is_refused(gate_world: GateWorld, gate_api: TestClient) -> None:
    bot = integration_client(gate_api, gate_world.services)
    res = book(bot, appointment_id="APT-BOT-1")
    assert res.status_code == 201, res.text
    body = res.json()
    assert (body["appointment_id"], body["status"], body["created_by"]) == (
        "APT-BOT-1",
        "active",
        "decl-system",
    )
    assert book(gate_api).status_code == 201  # a supervisor too; the server names it
    officer = TestClient(gate_api.app)
    add_account(gate_world.services, "li", "officer")
    login(officer, "li")
    assert book(officer).status_code == 403
    assert officer.get("/api/v1/appointments").status_code == 200  # everyone reads
    assert stored(gate_world) == 2
    bad = book(bot, containers=["MSKU1234566"])
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "containers.0"
    assert "check digit" in bad.json()["error"]["message"]
    assert book(bot, gate_id="G-NOWHERE").status_code == 422
    now = utc_now()
    assert book(bot, window_end=format_ts(now - timedelta(hours=2)),
                window_start=format_ts(now - timedelta(hours=3))).status_code == 422  # fmt: skip
    assert book(bot, window_end=format_ts(now - timedelta(hours=2))).status_code == 422
    assert book(bot, appointment_id="APT-BOT-1").status_code == 409
    assert book(bot, surprise=1).status_code == 422
    assert stored(gate_world) == 2  # nothing refused was stored
    assert ("decl-system", "appointment.create", "APT-BOT-1") in audit_actions(gate_world)


def test_a_booked_vehicle_is_released_once(gate_world: GateWorld, gate_api: TestClient) -> None:
    bot = integration_client(gate_api, gate_world.services)
    assert book(bot, appointment_id="APT-1").status_code == 201
    command = pass_gate(gate_world, DEST, "P-APT-1", 1, containers=[BOX], plate="粤B12345")
    assert command is not None and (command.action, command.reasons) == ("open", [])
    verify_gate(gate_world, command, DEST)
    row = gate_api.get("/api/v1/passages/P-APT-1").json()
    assert (row["decision"], row["appointment_id"], row["trip_id"]) == ("open", "APT-1", None)
    used = gate_api.get("/api/v1/appointments/APT-1").json()
    assert (used["status"], used["used_by_passage"]) == ("used", "P-APT-1")
    # the same vehicle again: held, the booking used
    command = pass_gate(gate_world, DEST, "P-APT-2", 0.5, containers=[BOX], plate="粤B12345")
    assert command is not None and command.action == "hold"
    assert command.reasons == ["appointment APT-1 was already used (passage P-APT-1)"]
    alarms, _ = AlarmService(gate_world.services.store.engine).find(AlarmQuery())
    assert alarms == []  # a known, booked vehicle: no GATE_MISMATCH
    # both counted in the gate release report
    now = utc_now()
    window = {"from": format_ts(now - timedelta(days=1)), "to": format_ts(now + timedelta(days=1)),
              "tz": "UTC"}  # fmt: skip
    report = gate_api.get("/api/v1/reports/gate-release", params=window).json()
    baiyun = next(g for g in report["gates"] if g["gate_id"] == DEST)
    assert (baiyun["passages"], baiyun["auto_open"], baiyun["appointment_open"]) == (2, 1, 1)
    assert baiyun["held"] == 1
    assert verify(gate_world.services.store.engine).ok


def test_out_of_window_and_mismatch_are_held(gate_world: GateWorld, gate_api: TestClient) -> None:
    now = utc_now()
    bot = integration_client(gate_api, gate_world.services)
    later = {"window_start": format_ts(now + timedelta(hours=2)),
             "window_end": format_ts(now + timedelta(hours=4))}  # fmt: skip
    assert book(bot, appointment_id="APT-LATER", **later).status_code == 201
    command = pass_gate(gate_world, DEST, "P-EARLY", 0, containers=[BOX], plate="粤B12345")
    assert command is not None and command.action == "hold"
    assert len(command.reasons) == 1 and command.reasons[0].startswith("passage at ")
    assert "before the window of appointment APT-LATER" in command.reasons[0]
    assert gate_api.get("/api/v1/appointments/APT-LATER").json()["status"] == "active"
    # a container other than the booked one: held, and a discrepancy (GATE_MISMATCH)
    assert book(bot, appointment_id="APT-2", plate="粤C·54321").status_code == 201
    command = pass_gate(
        gate_world, DEST, "P-OTHER", 0, containers=["CSQU3054383"], plate="粤C54321"
    )
    assert command is not None and command.action == "hold"
    assert command.reasons == [
        "container CSQU3054383 is not on appointment APT-2",
        f"booked container(s) {BOX} not seen",
    ]
    alarms, _ = AlarmService(gate_world.services.store.engine).find(AlarmQuery())
    assert [(a.type, a.trip_id) for a in alarms] == [("GATE_MISMATCH", f"gate:{DEST}")]


def test_cancel_list_and_a_cancelled_booking_releases_nothing(
    gate_world: GateWorld, gate_api: TestClient
) -> None:
    bot = integration_client(gate_api, gate_world.services)
    assert book(bot, appointment_id="APT-C").status_code == 201
    assert book(bot, appointment_id="APT-D", plate="粤D·00001", containers=[]).status_code == 201
    url = "/api/v1/appointments/APT-C/cancel"
    assert bot.post(url, json={"comment": " "}).status_code == 422
    res = bot.post(url, json={"comment": "trip called off"})
    assert res.status_code == 200, res.text
    assert (res.json()["status"], res.json()["cancel_comment"]) == ("cancelled", "trip called off")
    assert bot.post(url, json={"comment": "again"}).status_code == 409
    assert bot.post("/api/v1/appointments/NOPE/cancel", json={"comment": "x"}).status_code == 404
    assert ("decl-system", "appointment.cancel", "APT-C") in audit_actions(gate_world)
    listed = gate_api.get("/api/v1/appointments", params={"status": "active"}).json()
    assert [a["appointment_id"] for a in listed] == ["APT-D"]
    assert (
        gate_api.get("/api/v1/appointments", params={"plate": "粤B12345"}).json()[0][
            "appointment_id"
        ]
        == "APT-C"
    )
    command = pass_gate(gate_world, DEST, "P-C", 0, containers=[BOX], plate="粤B12345")
    assert command is not None and command.action == "hold"
    row = gate_api.get("/api/v1/passages/P-C").json()
    assert row["reason_codes"] == ["no_declaration"] and row["appointment_id"] is None
    # a vehicle booked without containers passes empty
    command = pass_gate(gate_world, DEST, "P-D", 0, containers=[], plate="粤D00001")
    assert command is not None and command.action == "open"


def test_a_corrected_reading_releases_a_booked_vehicle(
    gate_world: GateWorld, gate_api: TestClient
) -> None:
    bot = integration_client(gate_api, gate_world.services)
    assert book(bot, appointment_id="APT-R").status_code == 201
    unsure = [{"number": "MSKU1234566", "confidence": 0.5, "check_digit_ok": False,
               "needs_review": True}]  # fmt: skip
    command = pass_misread(gate_world, "P-R", unsure, plate="粤B12345")
    assert command is not None and command.reasons == ["container reading needs review"]
    lane(gate_world, "hold", "P-R")
    res = correct(gate_api, "P-R", containers=[BOX], comment="read at the lane")
    assert res.status_code == 200, res.text
    assert (res.json()["decision"], res.json()["appointment_id"]) == ("open", "APT-R")
    _, sent = gate_world.recorder.sent[-1]
    assert isinstance(sent, GateCommand) and sent.action == "open"
    assert gate_api.get("/api/v1/appointments/APT-R").json()["status"] == "used"


def test_migration_10_gives_an_older_database_corrections_and_appointments(
    store_url: str,
) -> None:
    """On SQLite and PostgreSQL: a database from before migration 10 (no appointments, no
    corrections, passages without their two columns) gets them, its passages kept."""
    from sqlalchemy import inspect, text

    from server.store import Store
    from server.store.migrations import MIGRATIONS, current_version

    store = Store.open(store_url)
    with store.engine.begin() as conn:  # back to the schema before migration 10
        conn.execute(text("DROP TABLE appointments"))
        conn.execute(text("DROP TABLE passage_corrections"))
        for column in ("appointment_id", "corrected_at"):
            conn.execute(text(f"ALTER TABLE passages DROP COLUMN {column}"))
        conn.execute(text("DELETE FROM schema_migrations WHERE version >= 10"))
    assert current_version(store.engine) == 9
    store.close()

    again = Store.open(store_url)  # migrates
    try:
        assert current_version(again.engine) == max(m.version for m in MIGRATIONS) >= 10
        found = inspect(again.engine)
        assert {"appointments", "passage_corrections"} <= set(found.get_table_names())
        columns = {c["name"] for c in found.get_columns("passages")}
        assert {"appointment_id", "corrected_at"} <= columns
    finally:
        again.close()


def test_booked_used_and_corrected_on_sqlite_and_postgresql(store_url: str, tmp_path: Path) -> None:
    """The store's side of appointments and corrections (JSON columns, the used mark, the
    correction beside the reading) on both databases."""
    with gate_world_on(store_url, tmp_path) as world:
        book_in(world, "APT-PG-1", [BOX])
        command = pass_gate(world, DEST, "P-PG-1", 1, containers=[BOX], plate="粤B12345")
        assert command is not None and command.action == "open"
        again = pass_gate(world, DEST, "P-PG-2", 0.5, containers=[BOX], plate="粤B12345")
        assert again is not None and again.reasons == [
            "appointment APT-PG-1 was already used (passage P-PG-1)"
        ]
        book_in(world, "APT-PG-2", ["TGHU5623000"], plate="粤C·00002")
        unsure = [{"number": "TGHU5623001", "confidence": 0.5, "check_digit_ok": False,
                   "needs_review": False}]  # fmt: skip
        pass_misread(world, "P-PG-3", unsure, plate="粤C00002")
        lane(world, "hold", "P-PG-3")
        fixed = PassageCorrections(world.gates).correct(
            "P-PG-3", ["TGHU5623000"], None, "read at the lane", "li"
        )
        assert (fixed["decision"], fixed["appointment_id"]) == ("open", "APT-PG-2")
        assert fixed["containers"][0]["number"] == "TGHU5623001"
        assert fixed["correction"]["containers"][0]["number"] == "TGHU5623000"
        assert fixed["correction"]["previous_reasons"] == [
            "container number TGHU5623001 fails its check digit"
        ]
        booked = world.gates.appointments.get("APT-PG-2")
        assert booked is not None and (booked["status"], booked["used_by_passage"]) == (
            "used",
            "P-PG-3",
        )
        assert verify(world.services.store.engine).ok


def book_in(world: GateWorld, appointment_id: str, containers: list[str],
            plate: str = PLATE) -> None:  # fmt: skip
    now = utc_now()
    world.gates.appointments.create(
        NewAppointment(
            plate=plate, containers=tuple(containers), gate_id=DEST, direction="in",
            window_start=now - timedelta(hours=1), window_end=now + timedelta(hours=1),
            purpose="test", enterprise={"code": "1", "name": "x"},
            appointment_id=appointment_id,
        ),
        "test-supervisor",
    )  # fmt: skip


@contextmanager
def gate_world_on(store_url: str, tmp_path: Path) -> Iterator[GateWorld]:
    world = gate_world_in(tmp_path, storage=StorageSettings(url=store_url))
    try:
        yield world
    finally:
        world.services.store.close()

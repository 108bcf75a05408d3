"""An officer corrects a held passage's reading: refused unless the check digit holds,
stored beside the OCR reading, audited with before and after, decided again — a signed
`open` only while the truck still waits in the lane."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from contract.ids import format_ts, utc_now
from contract.payloads import GateCommand, Passage
from server.alarms import AlarmQuery, AlarmService
from server.audit import verify
from server.store import schema
from tests.server.auth.session import add_account, login
from tests.server.gates.conftest import GateWorld, integration_client, passage_fields
from tests.server.gates.test_service import (
    DEST,
    audit_actions,
    depart,
    pass_gate,
    release,
    verify_gate,
)

MISREAD = [{"number": "CSQU3054388", "confidence": 0.61, "check_digit_ok": False,
            "needs_review": False}]  # fmt: skip


def lane(world: GateWorld, state: str, passage_id: str | None, node: str = DEST) -> None:
    """The gate's retained lane state, stored as the ingest stores it."""
    world.feed("lane", node, utc_now(), lane="L1", state=state, passage_id=passage_id,
               signal="red", reason=None)  # fmt: skip


def held_arrival(world: GateWorld, api: TestClient, passage_id: str = "P-ARR-1") -> None:
    """A released trip's truck at its arrival gate, its container misread: held."""
    depart(world)
    assert release(api).status_code == 201
    command = pass_misread(world, passage_id, MISREAD)
    assert command is not None and command.action == "hold"
    assert command.reasons == ["container number CSQU3054388 fails its check digit"]


def pass_misread(
    world: GateWorld, passage_id: str, containers: list[dict[str, Any]], **over: Any
) -> GateCommand | None:
    fields = {**passage_fields(passage_id, **over), "containers": containers}
    msg = world.feed("passage", DEST, utc_now() - timedelta(minutes=2), **fields)
    assert isinstance(msg, Passage)
    return world.gates.handle_passage(msg)


def correct(api: TestClient, passage_id: str = "P-ARR-1", **body: Any) -> Any:
    return api.post(f"/api/v1/passages/{passage_id}/correct", json=body)


def counts(world: GateWorld) -> tuple[int, int, int]:
    with world.services.store.engine.connect() as conn:
        return (
            conn.execute(select(func.count()).select_from(schema.passage_corrections)).scalar_one(),
            conn.execute(select(func.count()).select_from(schema.commands)).scalar_one(),
            conn.execute(select(func.count()).select_from(schema.audit_log)).scalar_one(),
        )


def test_a_bad_check_digit_is_refused_and_changes_nothing(
    gate_world: GateWorld, gate_api: TestClient
) -> None:
    held_arrival(gate_world, gate_api)
    lane(gate_world, "hold", "P-ARR-1")
    before = counts(gate_world), gate_world.gates.gates.get_passage("P-ARR-1")
    sent = len(gate_world.recorder.sent)
    res = correct(gate_api, containers=["CSQU3054384"], comment="read at the lane")
    assert res.status_code == 422, res.text
    error = res.json()["error"]
    assert error["field"] == "containers.0" and "check digit" in error["message"]
    assert correct(gate_api, containers=["CSQ3054383"], comment="x").status_code == 422
    assert correct(gate_api, containers=["CSQU3054383"], comment="  ").status_code == 422
    assert correct(gate_api, comment="nothing corrected").status_code == 422
    assert (counts(gate_world), gate_world.gates.gates.get_passage("P-ARR-1")) == before
    assert len(gate_world.recorder.sent) == sent
    trip = gate_world.services.store.get_trip("D-0001")
    assert trip is not None and trip.status == "held"


def test_a_correction_while_the_truck_waits_opens_the_barrier(
    gate_world: GateWorld, gate_api: TestClient
) -> None:
    held_arrival(gate_world, gate_api)
    lane(gate_world, "hold", "P-ARR-1")
    sent = len(gate_world.recorder.sent)
    res = correct(gate_api, containers=[" csqu 3054383 "], comment="number read at the lane")
    assert res.status_code == 200, res.text
    body = res.json()
    # the OCR reading stays as it came; the correction sits beside it
    assert [c["number"] for c in body["containers"]] == ["CSQU3054388"]
    fix = body["correction"]
    assert [c["number"] for c in fix["containers"]] == ["CSQU3054383"]
    assert (fix["previous_decision"], fix["previous_reasons"]) == (
        "hold",
        ["container number CSQU3054388 fails its check digit"],
    )
    assert (fix["by"], fix["comment"], fix["lane_state"]) == (
        "test-supervisor",
        "number read at the lane",
        "hold",
    )
    assert (body["decision"], body["reasons"], body["effective"]) == ("open", [], "open")
    # a signed open for this passage and lane, the command the passage now names
    assert len(gate_world.recorder.sent) == sent + 1
    kind, command = gate_world.recorder.sent[-1]
    assert kind == "gate" and isinstance(command, GateCommand)
    assert (command.action, command.passage_id, command.lane) == ("open", "P-ARR-1", "L1")
    verify_gate(gate_world, command, DEST)
    assert body["command_id"] == command.command_id == fix["command_id"]
    trip = gate_world.services.store.get_trip("D-0001")
    assert trip is not None and trip.status == "released" and trip.ended_at is not None
    # audited with before and after
    assert audit_actions(gate_world)[-1] == ("test-supervisor", "passage.correct", "P-ARR-1")
    with gate_world.services.store.engine.connect() as conn:
        stored = conn.execute(
            select(schema.audit_log.c.details).order_by(schema.audit_log.c.seq.desc()).limit(1)
        ).scalar_one()
    details = json.loads(stored) if isinstance(stored, str) else stored
    assert details["before"]["containers"][0]["number"] == "CSQU3054388"
    assert details["before"]["decision"] == "hold"
    assert details["after"]["containers"][0]["number"] == "CSQU3054383"
    assert (details["after"]["decision"], details["command_id"]) == ("open", command.command_id)
    assert verify(gate_world.services.store.engine).ok
    # an open passage is not corrected again
    assert correct(gate_api, plate="粤A·D3K21", comment="again").status_code == 409
    # the report counts it as corrected, not as opened automatically
    now = utc_now()
    window = {"from": format_ts(now - timedelta(days=1)), "to": format_ts(now + timedelta(days=1)),
              "tz": "UTC"}  # fmt: skip
    report = gate_api.get("/api/v1/reports/gate-release", params=window)
    assert report.status_code == 200, report.text
    baiyun = next(g for g in report.json()["gates"] if g["gate_id"] == DEST)
    assert (baiyun["passages"], baiyun["auto_open"], baiyun["corrected"]) == (1, 0, 1)
    assert baiyun["corrected_open"] == 1
    csv = gate_api.get("/api/v1/reports/gate-release.csv", params=window).text.lstrip("\ufeff")
    lines = [line.split(",") for line in csv.splitlines()]
    assert lines[0][-3:] == ["corrected", "corrected_open", "appointment_open"]
    assert next(row for row in lines if row[0] == DEST)[-3:] == ["1", "1", "0"]


def test_a_correction_that_leaves_reasons_holds_with_them(
    gate_world: GateWorld, gate_api: TestClient
) -> None:
    depart(gate_world)  # no release record: still held after the correction
    pass_gate(gate_world, DEST, "P-ARR-2", 2, plate="粤A·D3K2I")
    alarms, _ = AlarmService(gate_world.services.store.engine).find(AlarmQuery())
    assert [a.type for a in alarms] == ["GATE_MISMATCH"]  # the misread plate differs
    lane(gate_world, "hold", "P-ARR-2")
    res = correct(gate_api, "P-ARR-2", plate="粤A·D3K21", comment="plate checked by eye")
    assert res.status_code == 200, res.text
    body = res.json()
    assert (body["decision"], body["reasons"]) == ("hold", ["no electronic release record"])
    assert (
        body["plate"]["text"] == "粤A·D3K2I" and body["correction"]["plate"]["text"] == "粤A·D3K21"
    )
    _, command = gate_world.recorder.sent[-1]
    assert isinstance(command, GateCommand) and command.action == "hold"
    assert command.reasons == ["no electronic release record"]
    trip = gate_world.services.store.get_trip("D-0001")
    assert trip is not None and trip.status == "held"
    alarms, _ = AlarmService(gate_world.services.store.engine).find(AlarmQuery())
    assert [(a.type, a.status) for a in alarms] == [("GATE_MISMATCH", "cleared_ack")]


def test_a_truck_that_left_gets_no_command(gate_world: GateWorld, gate_api: TestClient) -> None:
    held_arrival(gate_world, gate_api)
    lane(gate_world, "hold", "P-ARR-1")
    lane(gate_world, "idle", None)  # the truck backed out of the lane
    sent = len(gate_world.recorder.sent)
    res = correct(gate_api, containers=["CSQU3054383"], comment="read from the photo")
    assert res.status_code == 200, res.text
    body = res.json()
    assert body["decision"] == "open" and body["correction"]["lane_state"] == "left"
    assert body["correction"]["command_id"] is None
    assert len(gate_world.recorder.sent) == sent  # the barrier is never raised behind it
    trip = gate_world.services.store.get_trip("D-0001")
    assert trip is not None and trip.status == "released" and trip.ended_at is None


def test_who_may_correct_and_what(gate_world: GateWorld, gate_api: TestClient) -> None:
    held_arrival(gate_world, gate_api)
    url_body: dict[str, Any] = {"containers": ["CSQU3054383"], "comment": "x"}
    admin = TestClient(gate_api.app)
    add_account(gate_world.services, "root", "admin")
    login(admin, "root")
    bot = integration_client(gate_api, gate_world.services)
    for client in (admin, bot):
        assert correct(client, **url_body).status_code == 403
    officer = TestClient(gate_api.app)
    add_account(gate_world.services, "li", "officer")
    login(officer, "li")
    assert correct(gate_api, "NOPE", **url_body).status_code == 404
    gate_api.post("/api/v1/passages/P-ARR-1/override", json={"action": "hold", "comment": "x-ray"})
    res = correct(officer, **url_body)
    assert res.status_code == 409 and "override stands" in res.json()["error"]["message"]

"""Passages through the GateService and the REST API: decisions, trip lifecycle,
GATE_MISMATCH, release records, overrides, command results, remote unseal, audit."""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from contract.ids import format_ts, utc_now
from contract.payloads import GateCommand, Passage, TruckCommand, decode_edge
from contract.signing import CommandVerifier, MemoryNonceStore
from devices.elock.authorisation import check_token
from server.alarms import AlarmQuery, AlarmService
from server.audit import verify
from server.store import schema
from server.trips import TripTracker
from tests.lock_reports import signed_lock_fields
from tests.server.auth.session import add_account, login
from tests.server.conftest import declaration
from tests.server.gates.conftest import LOCK_SECRET, GateWorld, passage_fields

ORIGIN, DEST = "G-HUANGPU-1", "G-BAIYUN-1"
INSIDE_BAIYUN = (113.305, 23.419)  # (lon, lat) inside the destination site's fence


def register(world: GateWorld, **over: object) -> None:
    world.services.store.create_declaration(declaration(**over), utc_now() - timedelta(hours=3))


def sealed(
    world: GateWorld,
    vehicle: str = "TRK-1",
    state: str = "sealed",
    ago_min: float = 70,
    secret: str = LOCK_SECRET,
    lock_id: str = "EL-1",
) -> None:
    """A lock report signed by the lock (with `secret`)."""
    event = "sealed" if state == "sealed" else "unsealed"
    at = (utc_now() - timedelta(minutes=ago_min)).replace(microsecond=0)
    world.feed("lock", vehicle, at, **signed_lock_fields(secret, lock_id, at, state, event, 90))


def pass_gate(
    world: GateWorld, gate: str, passage_id: str, ago_min: float, **over: Any
) -> GateCommand | None:
    msg = world.feed("passage", gate, utc_now() - timedelta(minutes=ago_min),
                     **passage_fields(passage_id, **over))  # fmt: skip
    assert isinstance(msg, Passage)
    return world.gates.handle_passage(msg)


def verify_gate(world: GateWorld, command: GateCommand, node: str) -> None:
    verifier = CommandVerifier(world.public_key, node, MemoryNonceStore())
    outcome = verifier.verify(GateCommand, command.to_json())
    assert outcome.ok, outcome.detail


def audit_actions(world: GateWorld) -> list[tuple[str, str, str]]:
    with world.services.store.engine.connect() as conn:
        rows = conn.execute(
            select(schema.audit_log.c.actor, schema.audit_log.c.action,
                   schema.audit_log.c.object_id).order_by(schema.audit_log.c.seq)
        ).all()  # fmt: skip
    return [(r[0], r[1], r[2]) for r in rows]


def depart(world: GateWorld, passage_id: str = "P-DEP-1", ago_min: float = 60) -> GateCommand:
    register(world)
    sealed(world)
    command = pass_gate(world, ORIGIN, passage_id, ago_min)
    assert command is not None and command.action == "open", command
    return command


def test_departure_opens_signed_and_starts_the_trip(gate_world: GateWorld) -> None:
    command = depart(gate_world)
    verify_gate(gate_world, command, ORIGIN)
    assert (command.passage_id, command.lane, command.reasons) == ("P-DEP-1", "L1", [])
    assert (command.expires_at - command.issued_at) == timedelta(seconds=30)
    trip = gate_world.services.store.get_trip("D-0001")
    row = gate_world.gates.gates.get_passage("P-DEP-1")
    assert trip is not None and row is not None
    assert trip.status == "in_transit" and trip.started_at == row["ts"]
    assert (row["decision"], row["trip_id"], row["phase"]) == ("open", "D-0001", "departure")
    assert row["command_id"] == command.command_id
    stored = gate_world.gates.gates.command(command.command_id)
    assert stored is not None and json.loads(stored["payload"])["signature"] == command.signature
    assert ("system", "gate.decision", "P-DEP-1") in audit_actions(gate_world)
    assert verify(gate_world.services.store.engine).ok


def test_departure_with_an_unsealed_lock_holds_and_the_trip_waits(gate_world: GateWorld) -> None:
    register(gate_world)
    sealed(gate_world, state="unsealed")
    command = pass_gate(gate_world, ORIGIN, "P-1", 60)
    assert command is not None and command.action == "hold"
    assert command.reasons == ["lock EL-1 is unsealed, not sealed"]
    trip = gate_world.services.store.get_trip("D-0001")
    assert trip is not None and trip.status == "declared" and trip.started_at is None
    alarms, _ = AlarmService(gate_world.services.store.engine).find(AlarmQuery())
    assert alarms == []  # a lock not yet sealed is no gate mismatch


def test_departure_holds_a_lock_whose_newest_report_is_forged(gate_world: GateWorld) -> None:
    """A tampered gateway's "sealed" after the lock's own "unsealed" changes nothing: the
    gate does not believe it, and does not fall back on an older state either."""
    register(gate_world)
    sealed(gate_world, state="unsealed", ago_min=75)
    sealed(gate_world, ago_min=70, secret="not-the-lock-secret-000")  # forged by the gateway
    command = pass_gate(gate_world, ORIGIN, "P-1", 60)
    assert command is not None and command.action == "hold"
    assert command.reasons == ["lock EL-1 cannot be authenticated: its newest report fails its MAC"]
    # The same report without MAC or counter (stripped) is no better.
    at = (utc_now() - timedelta(minutes=65)).replace(microsecond=0)
    stripped = signed_lock_fields(LOCK_SECRET, "EL-1", at, "sealed", "sealed", 90)
    del stripped["mac"], stripped["counter"]
    gate_world.feed("lock", "TRK-1", at, **stripped)
    command = pass_gate(gate_world, ORIGIN, "P-2", 60)
    assert command is not None and command.action == "hold"
    # The lock's own next report is believed again.
    sealed(gate_world, ago_min=62)
    command = pass_gate(gate_world, ORIGIN, "P-3", 60)
    assert command is not None and command.action == "open", command


def test_departure_holds_a_lock_whose_newest_report_is_a_replay(gate_world: GateWorld) -> None:
    """The gateway keeps the lock's authentic "sealed" and sends it again after the lock's
    "unsealed": authentic, received last, but its counter gives it away."""
    register(gate_world)
    at = (utc_now() - timedelta(minutes=75)).replace(microsecond=0)
    old = signed_lock_fields(LOCK_SECRET, "EL-1", at, "sealed", "sealed", 90, counter=41)
    gate_world.feed("lock", "TRK-1", at, **old)
    sealed(gate_world, state="unsealed", ago_min=72)  # counter > 41
    gate_world.feed("lock", "TRK-1", at, **old)  # the replay, a new seq
    command = pass_gate(gate_world, ORIGIN, "P-1", 60)
    assert command is not None and command.action == "hold"
    [reason] = command.reasons
    assert reason.startswith("lock EL-1 cannot be authenticated: its newest report (counter 41)")


def test_a_lock_without_a_secret_is_held_as_unauthenticated(gate_world: GateWorld) -> None:
    register(gate_world, lock_ids=["EL-9"])
    sealed(gate_world, lock_id="EL-9", secret="whatever-the-lock-has-0")
    command = pass_gate(gate_world, ORIGIN, "P-1", 60)
    assert command is not None and command.action == "hold"
    assert command.reasons == ["lock EL-9 cannot be authenticated: no secret is configured for it"]


def test_unknown_truck_is_held_with_a_gate_mismatch(gate_world: GateWorld) -> None:
    register(gate_world)
    command = pass_gate(gate_world, ORIGIN, "P-X", 5, containers=["MSKU1234565"], plate="粤B12345")
    assert command is not None and command.action == "hold"
    alarms, _ = AlarmService(gate_world.services.store.engine).find(AlarmQuery())
    assert [(a.type, a.severity, a.trip_id, a.vehicle_id) for a in alarms] == [
        ("GATE_MISMATCH", "major", f"gate:{ORIGIN}", "粤B12345")
    ]
    assert alarms[0].position == (113.505, 23.087) and "P-X" in alarms[0].detail


def test_differing_containers_raise_the_mismatch_on_the_trip(gate_world: GateWorld) -> None:
    register(gate_world, containers=["CSQU3054383", "MSKU1234565"])
    sealed(gate_world)
    command = pass_gate(gate_world, ORIGIN, "P-2", 5, containers=["CSQU3054383", "TGHU0000000"])
    assert command is not None and command.action == "hold"
    assert "container TGHU0000000 is not declared on D-0001" in command.reasons
    alarms, _ = AlarmService(gate_world.services.store.engine).find(AlarmQuery())
    assert [(a.type, a.trip_id, a.vehicle_id) for a in alarms] == [
        ("GATE_MISMATCH", "D-0001", "TRK-1")
    ]


def test_an_unconfigured_gate_controller_is_held(gate_world: GateWorld) -> None:
    command = pass_gate(gate_world, "G-NOWHERE", "P-3", 1)
    assert command is not None and command.reasons == [
        "gate controller G-NOWHERE is not a configured gate"
    ]


def test_replayed_and_repeated_passages(gate_world: GateWorld) -> None:
    register(gate_world)
    sealed(gate_world)
    assert pass_gate(gate_world, ORIGIN, "P-R", 60, replayed=True) is None  # recorded, not sent
    row = gate_world.gates.gates.get_passage("P-R")
    assert row is not None and row["decision"] == "open" and row["replayed"] is True
    assert pass_gate(gate_world, ORIGIN, "P-R", 59) is None  # same passage id: decided once
    assert [a for a in audit_actions(gate_world) if a[1] == "gate.decision"] == [
        ("system", "gate.decision", "P-R")
    ]


def release(client: TestClient, headers: dict[str, str] | None = None, **body: object):
    body = body or {"release_id": "REL-1", "released_at": format_ts(utc_now())}
    return client.post("/api/v1/declarations/D-0001/release", json=body, headers=headers or {})


def test_clean_arrival_is_released(gate_world: GateWorld, gate_api: TestClient) -> None:
    depart(gate_world)
    assert release(gate_api).status_code == 201
    command = pass_gate(gate_world, DEST, "P-ARR-1", 10)
    assert command is not None and (command.action, command.reasons) == ("open", [])
    verify_gate(gate_world, command, DEST)
    trip = gate_world.services.store.get_trip("D-0001")
    assert trip is not None and trip.status == "released" and trip.ended_at is not None


def test_arrival_is_held_with_every_reason(gate_world: GateWorld, gate_api: TestClient) -> None:
    depart(gate_world, ago_min=200)  # over the 120 min limit by the arrival
    AlarmService(gate_world.services.store.engine).raise_(
        "D-0001", "TRK-1", "ROUTE_DEVIATION", "major", utc_now() - timedelta(minutes=100),
        None, "off the corridor",
    )  # fmt: skip
    assert release(gate_api, inspect=True).status_code == 201
    command = pass_gate(gate_world, DEST, "P-ARR-2", 10)
    assert command is not None and command.action == "hold"
    assert command.reasons == [
        "the declaration system asks for inspection",
        "unresolved alarm ROUTE_DEVIATION",
        "unresolved alarm TRANSIT_OVERDUE",  # the judge's timers (their grace passed too)
        "time limit of 120 min exceeded by 70 min",
    ]
    trip = gate_world.services.store.get_trip("D-0001")
    assert trip is not None and trip.status == "held"
    passages = gate_api.get("/api/v1/passages", params={"decision": "hold"}).json()
    assert [p["passage_id"] for p in passages] == ["P-ARR-2"]
    assert passages[0]["reasons"] == command.reasons and passages[0]["phase"] == "arrival"


def test_release_records_are_validated_audited_and_taken_from_integrations(
    gate_world: GateWorld, gate_api: TestClient
) -> None:
    register(gate_world)
    both = release(gate_api, release_id="R", released_at=format_ts(utc_now()), inspect=True)
    assert both.status_code == 422
    assert release(gate_api, release_id="R").status_code == 422
    missing = gate_api.post("/api/v1/declarations/NOPE/release", json={"inspect": True})
    assert missing.status_code == 404
    add_account(gate_world.services, "decl-system", "integration", password=None)
    from server.auth.accounts import AccountStore
    from server.auth.config import AuthSettings

    token, _ = AccountStore(gate_world.services.store.engine, AuthSettings()).issue_token(
        "test", "decl-system", "declaration system", None, utc_now()
    )
    bot = TestClient(gate_api.app)
    res = release(bot, headers={"Authorization": f"Bearer {token}"})
    assert res.status_code == 201, res.text
    assert res.json()["recorded_by"] == "decl-system" and res.json()["release_id"] == "REL-1"
    assert ("decl-system", "declaration.release", "D-0001") in audit_actions(gate_world)
    officer = TestClient(gate_api.app)
    add_account(gate_world.services, "li", "officer")
    login(officer, "li")
    assert release(officer).status_code == 403  # releases come from the declaration system


def test_release_record_after_a_hold_releases_the_trip_not_the_barrier(
    gate_world: GateWorld, gate_api: TestClient
) -> None:
    depart(gate_world)
    pass_gate(gate_world, DEST, "P-ARR-4", 5)  # no release record yet → held
    sent = len(gate_world.recorder.sent)
    res = release(gate_api)
    assert res.status_code == 201, res.text
    assert (res.json()["trip_status"], res.json()["hold_reasons"]) == ("released", [])
    trip = gate_world.services.store.get_trip("D-0001")
    assert trip is not None and trip.status == "released" and trip.ended_at is None
    assert len(gate_world.recorder.sent) == sent  # no command behind the officer's back
    row = gate_world.gates.gates.get_passage("P-ARR-4")
    assert row is not None and row["decision"] == "hold" and row["override_action"] is None
    actions = audit_actions(gate_world)
    assert actions[-2:] == [
        ("test-supervisor", "declaration.release", "D-0001"),
        ("system", "trip.release", "D-0001"),
    ]
    # the truck presents itself again: decided again, opened, and the trip ends there
    command = pass_gate(gate_world, DEST, "P-ARR-5", 1)
    assert command is not None and (command.action, command.reasons) == ("open", [])
    trip = gate_world.services.store.get_trip("D-0001")
    assert trip is not None and trip.status == "released" and trip.ended_at is not None
    assert verify(gate_world.services.store.engine).ok


def test_release_record_does_not_lift_other_holds(
    gate_world: GateWorld, gate_api: TestClient
) -> None:
    depart(gate_world)
    AlarmService(gate_world.services.store.engine).raise_(
        "D-0001", "TRK-1", "LOCK_TAMPER", "critical", utc_now() - timedelta(minutes=30),
        None, "shell tampered",
    )  # fmt: skip
    pass_gate(gate_world, DEST, "P-ARR-6", 5)
    res = release(gate_api).json()
    assert res["trip_status"] == "held"
    assert res["hold_reasons"] == [
        "the seal did not hold during the trip (LOCK_TAMPER)",
        "unresolved alarm LOCK_TAMPER",
    ]
    # an officer's hold stands against a later record
    gate_api.post("/api/v1/passages/P-ARR-6/override", json={"action": "hold", "comment": "x-ray"})
    assert release(gate_api).json()["hold_reasons"] == ["an officer held passage P-ARR-6: x-ray"]
    trip = gate_world.services.store.get_trip("D-0001")
    assert trip is not None and trip.status == "held"


def test_officer_override(gate_world: GateWorld, gate_api: TestClient) -> None:
    depart(gate_world)
    pass_gate(gate_world, DEST, "P-ARR-3", 5)  # no release record → held
    trip = gate_world.services.store.get_trip("D-0001")
    assert trip is not None and trip.status == "held"
    url = "/api/v1/passages/P-ARR-3/override"
    assert gate_api.post(url, json={"action": "open"}).status_code == 422
    assert gate_api.post(url, json={"action": "open", "comment": "  "}).status_code == 422
    assert gate_api.post(url, json={"action": "wave", "comment": "x"}).status_code == 422
    assert gate_api.post("/api/v1/passages/NOPE/override",
                         json={"action": "open", "comment": "x"}).status_code == 404  # fmt: skip
    admin = TestClient(gate_api.app)
    add_account(gate_world.services, "root", "admin")
    login(admin, "root")
    assert admin.post(url, json={"action": "open", "comment": "x"}).status_code == 403
    before = len(gate_world.recorder.sent)
    res = gate_api.post(url, json={"action": "open", "comment": "paper release checked"})
    assert res.status_code == 200, res.text
    body = res.json()
    assert body["decision"] == "hold" and body["effective"] == "open"
    assert body["override"]["comment"] == "paper release checked"
    assert body["override"]["by"] == "test-supervisor"
    kind, command = gate_world.recorder.sent[before]
    assert kind == "gate" and isinstance(command, GateCommand) and command.action == "open"
    assert command.reasons == ["officer override: paper release checked"]
    assert body["command_id"] == command.command_id
    verify_gate(gate_world, command, DEST)
    trip = gate_world.services.store.get_trip("D-0001")
    assert trip is not None and trip.status == "released"
    assert ("test-supervisor", "passage.override", "P-ARR-3") in audit_actions(gate_world)
    assert verify(gate_world.services.store.engine).ok


def test_passages_list_filters_newest_first(gate_world: GateWorld, gate_api: TestClient) -> None:
    depart(gate_world, "P-A", ago_min=60)
    pass_gate(gate_world, ORIGIN, "P-B", 30, lane="L2", containers=["MSKU1234565"])
    pass_gate(gate_world, DEST, "P-C", 10)
    get = lambda **q: [p["passage_id"] for p in gate_api.get("/api/v1/passages", params=q).json()]  # noqa: E731
    assert get() == ["P-C", "P-B", "P-A"]
    assert get(gate=ORIGIN) == ["P-B", "P-A"]
    assert get(gate=ORIGIN, lane="L2") == ["P-B"]
    assert get(decision="open") == ["P-A"]
    assert get(since=format_ts(utc_now() - timedelta(minutes=45))) == ["P-C", "P-B"]
    assert get(limit=1) == ["P-C"]
    assert gate_api.get("/api/v1/passages", params={"decision": "maybe"}).status_code == 422
    one = gate_api.get("/api/v1/passages/P-A").json()
    assert one["images"] == ["gate://P-A/front.jpg"] and one["containers"][0]["number"] == (
        "CSQU3054383"
    )
    assert gate_api.get("/api/v1/passages/NOPE").status_code == 404


async def test_command_results_are_stored(gate_world: GateWorld, gate_api: TestClient) -> None:
    command = depart(gate_world)
    result = gate_world.feed(
        "command/result", ORIGIN, utc_now(), command_id=command.command_id, result="done",
        detail="barrier opened",
    )  # fmt: skip
    from server.store.database import IncomingMessage

    await gate_world.gates.on_messages([IncomingMessage("command/result", result, "", utc_now())])
    got = gate_api.get("/api/v1/passages/P-DEP-1").json()["command_result"]
    assert got["result"] == "done" and got["detail"] == "barrier opened"


async def test_on_messages_decides_and_publishes(gate_world: GateWorld) -> None:
    from server.store.database import IncomingMessage

    register(gate_world)
    sealed(gate_world)
    msg = gate_world.feed("passage", ORIGIN, utc_now(), **passage_fields("P-ON"))
    await gate_world.gates.on_messages([IncomingMessage("passage", msg, "", utc_now())])
    [(kind, command)] = gate_world.recorder.sent
    assert isinstance(command, GateCommand)
    assert (kind, command.node_id, command.action) == ("gate", ORIGIN, "open")


async def test_decided_passages_reach_listeners(gate_world: GateWorld) -> None:
    """The live stream hears of each passage once it is decided and recorded."""
    from server.store.database import IncomingMessage

    heard: list[tuple[str, str | None]] = []

    def listener(passage_id: str) -> None:
        row = gate_world.gates.gates.get_passage(passage_id)
        heard.append((passage_id, row["decision"] if row else None))

    gate_world.gates.add_listener(listener)
    register(gate_world)
    sealed(gate_world)
    msg = gate_world.feed("passage", ORIGIN, utc_now(), **passage_fields("P-LIVE"))
    await gate_world.gates.on_messages([IncomingMessage("passage", msg, "", utc_now())])
    assert heard == [("P-LIVE", "open")]


def test_remote_unseal_only_inside_the_destination_site(
    gate_world: GateWorld, gate_api: TestClient
) -> None:
    depart(gate_world)
    url = "/api/v1/trips/D-0001/unseal"
    assert gate_api.post(url, json={}).status_code == 422  # a comment is mandatory
    res = gate_api.post(url, json={"comment": "goods received"})
    assert res.status_code == 409 and "no position" in res.json()["error"]["message"]
    gate_world.feed("position", "TRK-1", utc_now(), lat=23.2, lon=113.4, fix="3d", sats=9)
    res = gate_api.post(url, json={"comment": "goods received"})
    assert res.status_code == 409 and "not inside destination site BAIYUN-CBZ" in res.text
    lon, lat = INSIDE_BAIYUN
    gate_world.feed("position", "TRK-1", utc_now(), lat=lat, lon=lon, fix="3d", sats=9)
    res = gate_api.post(url, json={"comment": "goods received"})
    assert res.status_code == 200, res.text
    [answer] = res.json()
    kind, command = gate_world.recorder.sent[-1]
    assert kind == "truck" and isinstance(command, TruckCommand)
    assert (answer["command_id"], answer["lock_id"]) == (command.command_id, "EL-1")
    verifier = CommandVerifier(gate_world.public_key, "TRK-1", MemoryNonceStore())
    assert verifier.verify(TruckCommand, command.to_json()).ok
    assert command.lock_token is not None
    token = base64.b64decode(command.lock_token)
    secret = LOCK_SECRET.encode()
    ok = check_token(secret, "EL-1", "unseal", "D-0001", token, utc_now(), 0)
    assert ok.result == "ok"
    assert check_token(secret, "EL-1", "unseal", "D-0002", token, utc_now(), 0).result == (
        "bad_token"
    )
    assert check_token(secret, "EL-1", "seal", "D-0001", token, utc_now(), 0).result == (
        "bad_token"
    )
    later = utc_now() + timedelta(seconds=301)
    assert check_token(secret, "EL-1", "unseal", "D-0001", token, later, 0).result == (
        "token_expired"
    )
    # single-use: a second authorisation carries a higher counter; this one is then dead
    res = gate_api.post(url, json={"comment": "once more"})
    assert res.status_code == 200, res.text
    second = gate_world.recorder.sent[-1][1]
    assert isinstance(second, TruckCommand) and second.lock_token is not None
    newer = check_token(
        secret, "EL-1", "unseal", "D-0001", base64.b64decode(second.lock_token), utc_now(), 0
    )
    assert newer.result == "ok" and newer.counter > ok.counter
    assert check_token(
        secret, "EL-1", "unseal", "D-0001", token, utc_now(), newer.counter
    ).result == ("token_reused")
    assert ("test-supervisor", "trip.unseal", "D-0001") in audit_actions(gate_world)
    # An unknown lock has no secret: refused, nothing sent.
    register(gate_world, declaration_id="D-0002", vehicle_id="TRK-2", lock_ids=["EL-9"])
    gate_world.services.store.start_trip("D-0002", utc_now())
    gate_world.feed("position", "TRK-2", utc_now(), lat=lat, lon=lon, fix="3d", sats=9)
    sent = len(gate_world.recorder.sent)
    res = gate_api.post("/api/v1/trips/D-0002/unseal", json={"comment": "x"})
    assert res.status_code == 409 and "EL-9" in res.text and len(gate_world.recorder.sent) == sent


def test_first_fix_starts_a_trip_only_when_configured(gate_world: GateWorld) -> None:
    import asyncio

    from server.store.database import IncomingMessage

    register(gate_world)
    fix = gate_world.feed("position", "TRK-1", utc_now(), lat=23.08, lon=113.5, fix="3d")
    batch = [IncomingMessage("position", fix, "", utc_now())]
    asyncio.run(TripTracker(gate_world.services.store).on_messages(batch))
    trip = gate_world.services.store.get_trip("D-0001")
    assert trip is not None and trip.status == "declared"
    asyncio.run(TripTracker(gate_world.services.store, start_on_first_fix=True).on_messages(batch))
    trip = gate_world.services.store.get_trip("D-0001")
    assert trip is not None and trip.status == "in_transit"


def test_trip_lists_its_alarms_and_passages(gate_world: GateWorld, gate_api: TestClient) -> None:
    depart(gate_world)
    alarms = AlarmService(gate_world.services.store.engine)
    alarms.raise_("D-0001", "TRK-1", "UNPLANNED_STOP", "minor", utc_now() - timedelta(minutes=40),
                  (113.4, 23.2), "stopped 20 min")  # fmt: skip
    alarms.raise_("D-0001", "TRK-1", "ROUTE_DEVIATION", "major", utc_now() - timedelta(minutes=30),
                  None, "off the corridor")  # fmt: skip
    alarms.raise_("D-0002", "TRK-2", "LOCK_TAMPER", "critical", utc_now(), None, "not this trip")
    pass_gate(gate_world, DEST, "P-ARR-7", 5)
    trip = gate_api.get("/api/v1/trips/D-0001").json()
    assert trip["status"] == "held" and "track" in trip
    assert [(a["type"], a["severity"], a["status"]) for a in trip["alarms"]] == [
        ("UNPLANNED_STOP", "minor", "active_unack"),
        ("ROUTE_DEVIATION", "major", "active_unack"),
    ]
    assert trip["alarms"][0]["position"] == {"type": "Point", "coordinates": [113.4, 23.2]}
    assert [(p["passage_id"], p["phase"], p["decision"]) for p in trip["passages"]] == [
        ("P-DEP-1", "departure", "open"),
        ("P-ARR-7", "arrival", "hold"),
    ]
    assert trip["passages"][1]["reasons"] == [
        "no electronic release record",
        "unresolved alarm ROUTE_DEVIATION",
    ]
    listed = gate_api.get("/api/v1/trips").json()
    assert "alarms" not in listed[0] and "passages" not in listed[0]  # the list stays light
    register(gate_world, declaration_id="D-0003", vehicle_id="TRK-3", containers=["MSKU1234565"])
    fresh = gate_api.get("/api/v1/trips/D-0003").json()
    assert (fresh["alarms"], fresh["passages"]) == ([], [])


def test_arrival_clears_transit_overdue_after_counting_it(
    gate_world: GateWorld, gate_api: TestClient
) -> None:
    depart(gate_world, ago_min=200)
    alarms = AlarmService(gate_world.services.store.engine)
    alarms.raise_("D-0001", "TRK-1", "TRANSIT_OVERDUE", "major", utc_now() - timedelta(minutes=80),
                  None, "late")  # fmt: skip
    assert release(gate_api).status_code == 201
    command = pass_gate(gate_world, DEST, "P-ARR-8", 10)
    assert command is not None and "unresolved alarm TRANSIT_OVERDUE" in command.reasons
    found, _ = alarms.find(AlarmQuery(trip_id="D-0001", type="TRANSIT_OVERDUE"))
    assert [(a.type, a.status) for a in found] == [("TRANSIT_OVERDUE", "cleared_unack")]
    row = gate_world.gates.gates.get_passage("P-ARR-8")
    assert row is not None and found[0].cleared_at == row["ts"]


def unstored_passage(world: GateWorld, passage_id: str, seq: int) -> Any:
    """A passage as the ingest hands it to its writer: validated, not yet stored."""
    from server.store.database import IncomingMessage

    raw = json.dumps({"node_id": ORIGIN, "seq": seq, "ts": format_ts(utc_now()),
                      **passage_fields(passage_id)})  # fmt: skip
    return IncomingMessage("passage", decode_edge("passage", raw), raw, utc_now())


def stored_keys(world: GateWorld) -> list[tuple[str, int]]:
    m = schema.edge_messages.c
    with world.services.store.engine.connect() as conn:
        rows = conn.execute(select(m.node_id, m.seq).where(m.node_id == ORIGIN)).all()
    return [(r[0], r[1]) for r in rows]


async def test_passage_writer_stores_and_decides_in_one_transaction(
    gate_world: GateWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The gate worker's writer: the passage's (node, seq) row and its decision take the
    writer lock once; the command goes out from `on_messages` without a second decision;
    a redelivery (same node and seq) writes nothing at all."""
    from server.store import writer_lock

    register(gate_world)
    sealed(gate_world)
    locks: list[int] = []
    taken = writer_lock.begin_immediate

    def counted(*args: Any, **kwargs: Any) -> None:
        locks.append(1)
        taken(*args, **kwargs)

    monkeypatch.setattr(writer_lock, "begin_immediate", counted)
    item = unstored_passage(gate_world, "P-ONE", seq=7)
    assert gate_world.gates.store_passages([item]) == [item]
    assert len(locks) == 1
    assert stored_keys(gate_world) == [(ORIGIN, 7)]
    row = gate_world.gates.gates.get_passage("P-ONE")
    assert row is not None and row["decision"] == "open"
    await gate_world.gates.on_messages([item])
    [(_, command)] = gate_world.recorder.sent
    assert isinstance(command, GateCommand) and command.action == "open"
    assert command.passage_id == "P-ONE"
    decisions = [a for a in audit_actions(gate_world) if a[1] == "gate.decision"]
    assert decisions == [("system", "gate.decision", "P-ONE")]

    again = unstored_passage(gate_world, "P-ONE", seq=7)
    assert gate_world.gates.store_passages([again]) == []  # nothing new: not handed on
    assert len(locks) == 2 and stored_keys(gate_world) == [(ORIGIN, 7)]
    assert [a for a in audit_actions(gate_world) if a[1] == "gate.decision"] == decisions


async def test_passage_writer_stores_a_passage_it_cannot_decide(
    gate_world: GateWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A decision that fails rolls back alone: the message is still stored (and so
    acknowledged), and `on_messages` decides it once more."""
    register(gate_world)
    sealed(gate_world)
    gates = gate_world.gates
    decide = gates.decisions.decide_passage

    def broken(*args: Any) -> Any:
        raise RuntimeError("store went away")

    monkeypatch.setattr(gates.decisions, "decide_passage", broken)
    item = unstored_passage(gate_world, "P-LATE", seq=3)
    assert gates.store_passages([item]) == [item]
    assert stored_keys(gate_world) == [(ORIGIN, 3)]
    assert gates.gates.get_passage("P-LATE") is None
    monkeypatch.setattr(gates.decisions, "decide_passage", decide)
    await gates.on_messages([item])
    row = gates.gates.get_passage("P-LATE")
    assert row is not None and row["decision"] == "open"
    assert [c.passage_id for _, c in gate_world.recorder.sent] == ["P-LATE"]  # type: ignore[attr-defined]

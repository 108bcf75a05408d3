"""Appointment vehicles and an officer's correction through `bondwatch-demo`'s gate, every
part a process: the barrier stub, the camera stub, `bondwatch-edge gate`, the server.

Booked vehicles (no declaration, no truck agent) drive up one after the other; the camera
shows each one's container door:

- APT-1's vehicle, its container as booked, inside its window: released by itself;
- the same vehicle again: held (the booking is used);
- a vehicle whose door the reading gets "wrong" (MSKU1234565, booked as TGHU5623000 on
  APT-4): held; while it waits in the lane an officer corrects the number through the
  REST API, the server decides again, signs an `open`, and the barrier opens.

A truck with its declaration and release record passes too (the demo needs one).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from demo.__main__ import Demo
from demo.scenario import DemoAppointment, DemoGate, DemoVisitor, Scenario
from devtools.broker import free_port
from server.gates.corrections import WAITING_STATES
from tests.hil.test_demo_gate import GATE, ROUTE, barrier_state, last_stretch, truck

pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]

BOOKED, MISREAD, CORRECTED = "OOLU7312008", "MSKU1234565", "TGHU5623000"


def wait_for(what: Any, within_s: float, say: Any) -> Any:
    deadline = time.monotonic() + within_s
    while (found := what()) is None or found is False:
        assert time.monotonic() < deadline, say()
        time.sleep(0.5)
    return found


def test_booked_vehicles_and_a_correction_that_opens_the_barrier(tmp_path: Path) -> None:
    playback = last_stretch(ROUTE, 2500, tmp_path / "last-stretch.geojson")
    scenario = Scenario(
        time_scale=10,
        trucks=[truck("TRK-T1", 1, "CSQU3054383", "record", playback)],
        gate=DemoGate(node_id=GATE, hold_s=40, drive_off_s=1, travel_s=1, decision_timeout_s=30),
        appointments=[
            DemoAppointment(appointment_id="APT-1", plate="粤A·Y0001", containers=[BOOKED]),
            DemoAppointment(appointment_id="APT-4", plate="粤A·Y0004", containers=[CORRECTED]),
        ],
        visitors=[
            DemoVisitor(name="V1", door=BOOKED, arrive_after_s=1),
            DemoVisitor(name="V1-AGAIN", door=BOOKED, arrive_after_s=2),
            DemoVisitor(name="V4", door=MISREAD, arrive_after_s=3),
        ],
    )
    demo = Demo(tmp_path / "run", free_port(), scenario)
    try:
        base = demo.start()
        assert demo.choreographer is not None and demo.credentials is not None
        choreographer = demo.choreographer
        officer = httpx.Client(base_url=base, timeout=10)
        login = officer.post(
            "/api/v1/auth/login",
            json={"username": "officer", "password": demo.credentials.passwords["officer"]},
        )
        assert login.status_code == 200, login.text
        officer.headers["X-CSRF-Token"] = login.json()["csrf_token"]

        def misread_held() -> dict[str, Any] | None:
            for p in officer.get("/api/v1/passages", params={"gate": GATE}).json():
                read = [c["number"] for c in p["containers"]]
                if read == [MISREAD] and p["decision"] == "hold":
                    return p
            return None

        held = wait_for(misread_held, 300, lambda: f"outcomes {choreographer.outcomes}")
        assert held["reason_codes"] == ["no_declaration"], held
        res = officer.post(
            f"/api/v1/passages/{held['passage_id']}/correct",
            json={"containers": [CORRECTED], "comment": "number read on the door at the lane"},
        )
        assert res.status_code == 200, res.text
        corrected = res.json()
        assert (corrected["decision"], corrected["appointment_id"]) == ("open", "APT-4")
        # The truck is still at the lane: held, or — when the gate's report of its hold
        # has not reached the server yet (a loaded machine) — waiting for its decision.
        assert corrected["correction"]["lane_state"] in WAITING_STATES

        wait_for(
            lambda: len(choreographer.outcomes) == 4,
            300,
            lambda: f"outcomes {choreographer.outcomes}",
        )
        assert choreographer.outcomes == {
            "V1": "released",
            "V1-AGAIN": "held",
            "V4": "released by override",  # opened while it waited: by the correction
            "TRK-T1": "released",
        }
        passages = officer.get("/api/v1/passages", params={"gate": GATE}).json()
        by_id = {p["passage_id"]: p for p in passages}
        on_apt1 = sorted(
            (p for p in passages if [c["number"] for c in p["containers"]] == [BOOKED]),
            key=lambda p: p["ts"],
        )
        assert [(p["decision"], p["appointment_id"]) for p in on_apt1] == [
            ("open", "APT-1"),
            ("hold", "APT-1"),
        ]
        assert on_apt1[1]["reason_codes"] == ["appointment_used"]
        after = by_id[held["passage_id"]]
        assert after["command_result"]["result"] == "done", after
        assert [c["number"] for c in after["containers"]] == [MISREAD]  # the OCR reading kept
        bookings = {a["appointment_id"]: a for a in officer.get("/api/v1/appointments").json()}
        assert bookings["APT-1"]["used_by_passage"] == on_apt1[0]["passage_id"]
        assert bookings["APT-4"]["used_by_passage"] == held["passage_id"]
        state = barrier_state(demo)
        assert state["commands"].count("open") == 3, state  # V1, V4 after the correction, T1
        assert state["closed_limit"] and state["lamp"] == "red"
    finally:
        demo.stop()

"""The demo's gate: scenario, gate location, arrival detection, the agent's configuration."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from contract.config_file import load_model
from demo.gate import (
    ArrivalWatch,
    GateLane,
    distance_m,
    gate_location,
    route_length_m,
    with_stop_at_the_gate,
)
from demo.scenario import DemoGate, Scenario
from edge.gate.config import GateConfig

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "config" / "demo"
ROUTES = sorted((DEMO / "routes").glob("*.geojson"))
BAIYUN = (113.305, 23.4115)


def test_the_shipped_scenario_has_a_gate_at_every_trucks_destination():
    scenario = load_model(DEMO / "scenario.yaml", Scenario)
    assert scenario.gate is not None
    assert gate_location(ROUTES, scenario.gate.node_id) == BAIYUN
    for truck in scenario.trucks:
        assert truck.declaration["destination_gate"] == scenario.gate.node_id
        assert truck.elock and truck.declaration["lock_ids"]
    # Two clean trucks with their release record, one without (and with a detour), and a
    # clean one whose e-lock is a cellular device (through the JT/T 808 gateway).
    assert [t.release for t in scenario.trucks] == ["record", "record", "none", "record"]
    assert [t.node_id for t in scenario.trucks if t.cellular] == ["TRK-YUE-D21"]
    # Appointment vehicles: two booked and released, the first back again (held: used).
    booked = {b.appointment_id: b.containers for b in scenario.appointments}
    assert booked == {"APT-DEMO-1": ["OOLU7312008"], "APT-DEMO-2": ["CBHU8801501"]}
    assert [v.door for v in scenario.visitors] == ["OOLU7312008", "CBHU8801501", "OOLU7312008"]
    assert max(v.arrive_after_s for v in scenario.visitors) < 300  # before the trucks


def test_visitors_need_a_gate_and_bookings_valid_numbers():
    shipped = load_model(DEMO / "scenario.yaml", Scenario).model_dump()
    with pytest.raises(ValidationError, match="need a `gate`"):
        Scenario.model_validate({**shipped, "gate": None, "appointments": []})
    bad = {"appointment_id": "A", "plate": "粤A1", "containers": ["OOLU7312009"]}
    with pytest.raises(ValidationError, match="check digit"):
        Scenario.model_validate({**shipped, "appointments": [bad]})
    twice = [shipped["visitors"][0], shipped["visitors"][0]]
    with pytest.raises(ValidationError, match="name of its own"):
        Scenario.model_validate({**shipped, "visitors": twice})


def test_a_gate_missing_from_the_routes_says_how_to_fix_it():
    with pytest.raises(ValueError, match=r"G-NOWHERE.*gate_id of a gate feature"):
        gate_location(ROUTES, "G-NOWHERE")


@pytest.mark.parametrize(
    "bad",
    [{"frame_size": "big"}, {"node_id": "G/1"}, {"hold_s": 0}, {"colour": "red"}],
)
def test_bad_gate_settings_are_refused(bad):
    with pytest.raises(ValidationError):
        DemoGate.model_validate({"node_id": "G-BAIYUN-1", **bad})


def test_distance_is_great_circle_metres():
    assert distance_m(BAIYUN, BAIYUN) == 0.0
    # 0.001° of latitude is 111.2 m everywhere.
    assert distance_m((113.305, 23.4115), (113.305, 23.4125)) == pytest.approx(111.2, abs=0.2)


def test_each_truck_arrives_once_when_it_comes_close():
    watch = ArrivalWatch(BAIYUN, 300.0, frozenset({"TRK-1", "TRK-2"}))
    assert not watch.feed("TRK-1", 113.305, 23.4200)  # 940 m away
    assert watch.feed("TRK-1", 113.305, 23.4130)  # 170 m: drives in
    assert not watch.feed("TRK-1", 113.305, 23.4116)  # still there: not a second arrival
    assert not watch.feed("TRK-9", 113.305, 23.4115)  # not a demo truck of this gate
    assert watch.feed("TRK-2", 113.3052, 23.4114)
    assert watch.arrived == {"TRK-1", "TRK-2"}


def test_the_gate_agents_configuration_is_valid_and_modest(tmp_path):
    gate = DemoGate(node_id="G-BAIYUN-1")
    lane = GateLane(gate, tmp_path, {"host": "127.0.0.1", "port": 1883}, tmp_path / "k.pub")
    config = GateConfig.model_validate(
        lane.agent_config("/dev/pts/9", "http://127.0.0.1:9/stream.mjpg")
    )
    assert config.node_id == "G-BAIYUN-1" and config.lane == "L1"
    assert config.frames_per_camera == 1  # one read per arrival
    assert config.ocr.read_plates is False  # the rendered doors carry no plate
    assert config.barrier.registers.has_lamps


def test_trucks_stand_at_the_gate_before_their_next_lap():
    playback = DEMO / "routes" / "R-HP-BY.geojson"
    length = route_length_m(playback)
    assert 47_000 < length < 47_200  # 47.1 km, Huangpu New Port to Baiyun
    stops = with_stop_at_the_gate("18:240", playback, 1200)
    first, last = stops.split(",")
    assert first == "18:240"
    km, seconds = last.split(":")
    assert float(seconds) == 1200
    # 20 m before the end of the line, which is 56 m from the gate: inside the radius.
    assert float(km) * 1000 == pytest.approx(length - 20, abs=1)
    assert with_stop_at_the_gate("", playback, 60).count(",") == 0
    with pytest.raises(ValueError, match="no LineString"):
        route_length_m(DEMO / "zones.geojson")

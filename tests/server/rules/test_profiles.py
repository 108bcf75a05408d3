from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest

from server.rules import (
    ALARM_TYPES,
    CREDIT_CLASSES,
    DEFAULT_PROFILES,
    DEFAULT_SEVERITY,
    ProfileConfigError,
    load_profiles,
    profiles_from_mapping,
)

ROOT = Path(__file__).resolve().parents[3]


def test_demo_profiles_file_loads_and_keeps_defaults() -> None:
    profiles = load_profiles(ROOT / "config" / "demo" / "profiles.yaml")
    assert set(profiles) == set(CREDIT_CLASSES)
    assert profiles["dishonest"].silence_s == 180
    assert profiles["general"].battery_floor_pct == DEFAULT_PROFILES["general"].battery_floor_pct


def test_lower_credit_is_tighter() -> None:
    order = [DEFAULT_PROFILES[c] for c in CREDIT_CLASSES]
    for hi, lo in itertools.pairwise(order):
        assert lo.corridor_factor <= hi.corridor_factor
        assert lo.deviation_persistence_s <= hi.deviation_persistence_s
        assert lo.max_stop_s <= hi.max_stop_s
        assert lo.gnss_loss_s <= hi.gnss_loss_s
        assert lo.silence_s <= hi.silence_s
    assert order[-1].max_stop_s < order[0].max_stop_s


def test_profile_errors_name_class_and_field() -> None:
    with pytest.raises(ProfileConfigError) as info:
        profiles_from_mapping(
            {"profiles": {"general": {"max_stop_s": -1, "colour": "red"}, "vip": {}}}, "p.yaml"
        )
    text = "\n".join(info.value.errors)
    assert "p.yaml: profiles.vip: unknown credit class" in text
    assert "p.yaml: profiles.general.max_stop_s" in text
    assert "p.yaml: profiles.general.colour: unknown field" in text


def test_alarm_severities_match_contract() -> None:
    """The table of docs/contract.md, row for row: extended, never renamed."""
    text = (Path(__file__).resolve().parents[3] / "docs" / "contract.md").read_text()
    table = text.split("## Alarm types", 1)[1].split("\n## ", 1)[0]
    documented = dict(re.findall(r"^\| `([A-Z_]+)` \| (\w+) \|", table, re.MULTILINE))
    assert documented == DEFAULT_SEVERITY
    assert set(ALARM_TYPES) == set(documented)
    assert DEFAULT_SEVERITY["LOCK_REPORT_FORGED"] == "critical"
    assert DEFAULT_SEVERITY["FORBIDDEN_ZONE"] == "critical"
    assert DEFAULT_SEVERITY["LOCK_LOW_BATTERY"] == "warning"
    assert DEFAULT_SEVERITY["GATE_MISMATCH"] == "major"
    assert DEFAULT_SEVERITY["GNSS_LOST"] == "minor"

"""The gate's configuration: the example validates, mistakes are named with their fix."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from contract.config_file import ConfigError, load_model
from edge.gate.config import GateConfig

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "config" / "examples" / "gate.yaml"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=60, cwd=ROOT
    )


def test_example_validates_through_the_cli():
    result = run("-m", "edge", "gate", "--config", str(EXAMPLE), "--validate-config")
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout


def test_example_loads_with_defaults():
    config = load_model(EXAMPLE, GateConfig)
    assert config.lane == "L1" and config.direction == "out"
    assert [c.name for c in config.cameras] == ["rear", "side"]
    assert config.decision_timeout_s == 10
    assert config.barrier.unit_id == 1
    assert config.images_dir == Path("/var/lib/bondwatch/images")


def _write(tmp_path: Path, **changes: object) -> Path:
    data = yaml.safe_load(EXAMPLE.read_text())
    data.update(changes)
    path = tmp_path / "gate.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    return path


def test_relative_paths_are_relative_to_the_file(tmp_path):
    config = load_model(_write(tmp_path, images_dir="images"), GateConfig)
    assert config.images_dir == tmp_path / "images"


def test_every_error_is_listed_with_its_path(tmp_path):
    path = _write(tmp_path, direction="sideways", cameras=[], decision_timeout_s=0, colour="red")
    with pytest.raises(ConfigError) as caught:
        load_model(path, GateConfig)
    text = "\n".join(caught.value.errors)
    assert "direction:" in text
    assert "cameras:" in text
    assert "decision_timeout_s:" in text
    assert "colour: unknown key" in text
    result = run("-m", "edge", "gate", "--config", str(path), "--validate-config")
    assert result.returncode == 1
    assert "4 error(s)" in result.stderr


def test_two_cameras_with_one_name_are_refused(tmp_path):
    cams = [
        {"type": "opencv", "name": "rear", "url": "rtsp://a"},
        {"type": "opencv", "name": "rear", "url": "rtsp://b"},
    ]
    with pytest.raises(ConfigError) as caught:
        load_model(_write(tmp_path, cameras=cams), GateConfig)
    assert "both named 'rear' — give each camera its own name" in caught.value.errors[0]


def test_a_camera_name_must_be_usable_in_file_names(tmp_path):
    cams = [{"type": "opencv", "name": "rear/../x", "url": "rtsp://a"}]
    with pytest.raises(ConfigError) as caught:
        load_model(_write(tmp_path, cameras=cams), GateConfig)
    assert "names image files" in caught.value.errors[0]


def test_at_most_four_cameras(tmp_path):
    cams = [{"type": "opencv", "name": f"c{i}", "url": f"rtsp://{i}"} for i in range(5)]
    with pytest.raises(ConfigError):
        load_model(_write(tmp_path, cameras=cams), GateConfig)

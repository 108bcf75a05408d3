"""The gateway's configuration and registry: the examples validate, errors name their path."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from contract.cellular_registry import CellularRegistry, phone_key
from edge.jt808.auth import auth_code, check_auth_code

ROOT = Path(__file__).resolve().parents[3]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edge.jt808", *args], capture_output=True, text=True, cwd=ROOT
    )


def test_the_example_validates() -> None:
    result = run("--config", "config/examples/jt808.yaml", "--validate-config")
    assert result.returncode == 0, result.stderr
    assert "OK (3 devices, 2 nodes)" in result.stdout


def test_every_error_is_listed_with_its_path(tmp_path: Path) -> None:
    bad = tmp_path / "jt808.yaml"
    bad.write_text(
        "gateway_id: gw/1\nstore: {path: s.db}\nlisten: {port: null}\nlimits: {frames_per_s: 0}\n"
    )
    result = run("--config", str(bad), "--validate-config")
    assert result.returncode == 1
    for path in ("gateway_id", "store.nonce_path", "registry", "limits.frames_per_s"):
        assert path in result.stderr, f"{path} missing from:\n{result.stderr}"


def test_the_registry_refuses_ambiguity() -> None:
    lock = {"phone": "13800000101", "node_id": "T1", "lock_id": "L1"}
    with pytest.raises(ValidationError, match="listed twice"):
        CellularRegistry.model_validate({"devices": [lock, {**lock, "phone": "013800000101"}]})
    with pytest.raises(ValidationError, match="lock L1 is listed twice"):
        CellularRegistry.model_validate({"devices": [lock, {**lock, "phone": "2"}]})
    with pytest.raises(ValidationError, match="needs its lock_id"):
        CellularRegistry.model_validate({"devices": [{"phone": "1", "node_id": "T1"}]})
    registry = CellularRegistry.model_validate(
        {"devices": [lock, {"phone": "2", "node_id": "T1", "kind": "tracker"}]}
    )
    assert registry.nodes() == ["T1"]
    assert registry.by_phone()[phone_key("00000000013800000101")].lock_id == "L1"


def test_authentication_codes_are_per_terminal() -> None:
    secret = b"a-gateway-secret-of-some-length"
    code = auth_code(secret, "13800000101")
    assert check_auth_code(secret, "013800000101", code)  # the 2013 header's padding
    assert check_auth_code(secret, "13800000101", code.lower())
    assert not check_auth_code(secret, "13800000102", code)
    assert not check_auth_code(b"another-secret-of-some-length", "13800000101", code)

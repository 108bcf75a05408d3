"""The real-hardware environment file of the HIL scenarios (`BONDWATCH_HIL_ENV`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.hil.hardware import ENV_VAR, HardwareFileError, hardware, parse_env_file, stubs_only


def skip_mark(fault: str) -> pytest.Mark:
    """The skip mark `stubs_only(fault)` puts on a scenario."""

    def scenario() -> None:
        return None

    marks: list[pytest.Mark] = getattr(stubs_only(fault)(scenario), "pytestmark")  # noqa: B009
    return marks[0]


def test_a_full_file_names_both_devices(tmp_path: Path) -> None:
    secret = tmp_path / "EL-0042"
    secret.write_bytes(b"s3cret\n")
    env = tmp_path / "bench.env"
    env.write_text(
        "# bench 7\n\nGNSS_PORT=/dev/ttyUSB0\nexport GNSS_BAUD=115200\n"
        f"LOCK_PORT='/dev/ttyUSB1'\nLOCK_ID=EL-0042\nLOCK_PHONE=13800000042\n"
        f'LOCK_SECRET_FILE="{secret}"\n'
    )
    real = parse_env_file(env)
    assert (real.gnss_port, real.gnss_baud) == ("/dev/ttyUSB0", 115200)
    assert (real.lock_port, real.lock_baud, real.lock_id) == ("/dev/ttyUSB1", 9600, "EL-0042")
    assert real.lock_phone == "13800000042" and real.lock_secret == b"s3cret"


def test_every_problem_is_reported_with_file_and_line(tmp_path: Path) -> None:
    env = tmp_path / "bad.env"
    env.write_text(
        "GNSS_PROT=/dev/ttyUSB0\nLOCK_PORT=/dev/ttyUSB1\nno equals sign\nLOCK_BAUD=fast\n"
    )
    with pytest.raises(HardwareFileError) as raised:
        parse_env_file(env)
    text = str(raised.value)
    assert f"{env}:1: unknown key GNSS_PROT" in text
    assert f"{env}:3: expected KEY=VALUE" in text
    assert "GNSS_PORT is required" in text
    assert "LOCK_ID, LOCK_SECRET_FILE" in text
    assert "LOCK_BAUD must be a number" in text


def test_without_the_variable_the_stubs_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert hardware() is None
    mark = skip_mark("unplug")
    assert mark.args == (False,)


def test_with_the_variable_fault_scenarios_skip_saying_why(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    env = tmp_path / "gnss-only.env"
    env.write_text("GNSS_PORT=/dev/ttyACM0\n")
    monkeypatch.setenv(ENV_VAR, str(env))
    real = hardware()
    assert real is not None and real.gnss_port == "/dev/ttyACM0" and real.lock_port is None
    mark = skip_mark("the GNSS stub's `unplug`")
    assert mark.args == (True,)
    assert "the GNSS stub's `unplug`" in mark.kwargs["reason"] and str(env) in mark.kwargs["reason"]

"""Real hardware instead of the firmware stubs: `BONDWATCH_HIL_ENV=file.env`.

The file names the real ports (labgrid's idea: the same scenario, other places)::

    # bench-7.env
    GNSS_PORT=/dev/ttyUSB0
    GNSS_BAUD=9600
    LOCK_PORT=/dev/ttyUSB1
    LOCK_BAUD=9600
    LOCK_ID=EL-0042
    LOCK_PHONE=13800000042
    LOCK_SECRET_FILE=/etc/bondwatch/secrets/EL-0042

Blank lines and `#` comments are ignored; values may be quoted. Without the variable
every scenario runs against the stubs. With it, the scenarios that inject a fault a
person would have to make by hand (unplugging a cable, moving a lock out of its area)
skip, each saying which fault it needs; all the others run against the real devices.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

ENV_VAR = "BONDWATCH_HIL_ENV"
KEYS = frozenset(
    {
        "GNSS_PORT",
        "GNSS_BAUD",
        "LOCK_PORT",
        "LOCK_BAUD",
        "LOCK_ID",
        "LOCK_PHONE",
        "LOCK_SECRET_FILE",
    }
)

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Hardware:
    """The real devices named by the environment file."""

    source: Path
    gnss_port: str
    gnss_baud: int
    lock_port: str | None
    lock_baud: int
    lock_id: str | None
    lock_phone: str | None
    lock_secret: bytes | None


class HardwareFileError(ValueError):
    pass


def parse_env_file(path: Path) -> Hardware:
    """Read a HIL environment file; every problem is reported, naming the file and line."""
    values: dict[str, str] = {}
    problems: list[str] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        key, sep, value = text.partition("=")
        key = key.strip().removeprefix("export ").strip()
        if not sep:
            problems.append(f"{path}:{number}: expected KEY=VALUE, got {text!r}")
            continue
        if key not in KEYS:
            problems.append(f"{path}:{number}: unknown key {key}; known: {', '.join(sorted(KEYS))}")
            continue
        values[key] = value.strip().strip("'\"")
    if "GNSS_PORT" not in values:
        problems.append(f"{path}: GNSS_PORT is required (the receiver's serial port)")
    lock_keys = {"LOCK_PORT", "LOCK_ID", "LOCK_SECRET_FILE"}
    if lock_keys & values.keys() and not lock_keys <= values.keys():
        missing = ", ".join(sorted(lock_keys - values.keys()))
        problems.append(f"{path}: a lock needs LOCK_PORT, LOCK_ID and LOCK_SECRET_FILE; {missing}")
    for key in ("GNSS_BAUD", "LOCK_BAUD"):
        if key in values and not values[key].isdigit():
            problems.append(f"{path}: {key} must be a number of bit/s, got {values[key]!r}")
    if problems:
        raise HardwareFileError("\n".join(problems))
    secret_file = values.get("LOCK_SECRET_FILE")
    return Hardware(
        source=path,
        gnss_port=values["GNSS_PORT"],
        gnss_baud=int(values.get("GNSS_BAUD", "9600")),
        lock_port=values.get("LOCK_PORT"),
        lock_baud=int(values.get("LOCK_BAUD", "9600")),
        lock_id=values.get("LOCK_ID"),
        lock_phone=values.get("LOCK_PHONE"),
        lock_secret=Path(secret_file).read_bytes().strip() if secret_file else None,
    )


def hardware() -> Hardware | None:
    """The hardware named by `BONDWATCH_HIL_ENV`, or None (the stubs)."""
    name = os.environ.get(ENV_VAR)
    return parse_env_file(Path(name)) if name else None


def stubs_only(fault: str) -> Callable[[F], F]:
    """Skip a scenario on real hardware only, saying which injected fault it needs."""
    name = os.environ.get(ENV_VAR)
    return pytest.mark.skipif(
        bool(name),
        reason=f"needs the stub's fault injection ({fault}); {ENV_VAR}={name} names real devices",
    )


def needs_lock() -> Callable[[F], F]:
    """Skip on real hardware whose environment file names no lock."""
    real = hardware()
    return pytest.mark.skipif(
        real is not None and real.lock_port is None,
        reason=f"{ENV_VAR} names no e-lock (LOCK_PORT, LOCK_ID, LOCK_SECRET_FILE)",
    )

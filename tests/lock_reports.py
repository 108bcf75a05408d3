"""Lock report fields as a BondWatch lock signs them (devices.elock.report_mac), for
tests that publish or store lock reports without a lock stub."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from devices.elock.report_mac import report_mac

_COUNTERS = itertools.count(1)


def signed_lock_fields(
    secret: bytes | str,
    lock_id: str,
    ts: datetime,
    state: str,
    event: str,
    battery_pct: int | None = None,
    counter: int | None = None,
) -> dict[str, Any]:
    """Lock id, state, event, battery, and the lock's `counter` (the next of this process
    when not given) with its `mac` over them and `ts`: the report must carry that very
    `ts`, in whole seconds as a lock reports it."""
    if ts.microsecond:
        raise ValueError("a lock reports whole seconds: truncate ts first")
    key = secret.encode() if isinstance(secret, str) else secret
    counter = next(_COUNTERS) if counter is None else counter
    fields: dict[str, Any] = {
        "lock_id": lock_id,
        "state": state,
        "event": event,
        "counter": counter,
        "mac": report_mac(key, lock_id, counter, ts, state, event, battery_pct).hex(),
    }
    if battery_pct is not None:
        fields["battery_pct"] = battery_pct
    return fields


def write_lock_secrets(path: Path, secrets: Mapping[str, str]) -> Path:
    """Write `secrets` (lock id → secret) as a server's `gates.lock_secrets_file`."""
    path.write_text(yaml.safe_dump(dict(secrets), allow_unicode=True), encoding="utf-8")
    return path

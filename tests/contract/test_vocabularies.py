"""Words the contract and the device libraries share: the lock's are the device library's
(the contract carries them); a lock's command results fit the contract's outcomes."""

from pathlib import Path
from typing import get_args

from contract.payloads import CommandOutcome, LockEvent, LockState
from devices.elock import profile
from server.alarms.lifecycle import DEFAULT_SEVERITY as LIFECYCLE_SEVERITY
from server.rules.alarms import DEFAULT_SEVERITY


def test_lock_vocabulary_is_the_device_librarys_and_documented():
    assert LockEvent is profile.LockEventName
    assert LockState is profile.LockState
    contract_md = (Path(__file__).resolve().parents[2] / "docs" / "contract.md").read_text()
    documented = contract_md[contract_md.index("Lock `event` values") :].split("\n\n", 1)[0]
    assert [f"`{event}`" in documented for event in get_args(LockEvent)] == [True] * len(
        get_args(LockEvent)
    )
    assert set(get_args(profile.ResultName)) <= set(get_args(CommandOutcome))


def test_one_severity_table():
    assert LIFECYCLE_SEVERITY == DEFAULT_SEVERITY
    # every type of docs/contract.md's table: tests/server/rules/test_profiles.py

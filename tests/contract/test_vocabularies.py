"""Device libraries keep their own copies of words the contract defines (devices may not
import contract); these tests keep them the same."""

from typing import get_args

from contract.payloads import CommandOutcome, LockEvent, LockState
from devices.elock import profile
from server.alarms.lifecycle import DEFAULT_SEVERITY as LIFECYCLE_SEVERITY
from server.rules.alarms import DEFAULT_SEVERITY


def test_lock_vocabulary_is_the_contracts():
    assert set(get_args(profile.LockEventName)) == set(get_args(LockEvent))
    assert set(get_args(profile.LockState)) == set(get_args(LockState))
    assert set(get_args(profile.ResultName)) <= set(get_args(CommandOutcome))


def test_one_severity_table():
    assert LIFECYCLE_SEVERITY == DEFAULT_SEVERITY
    assert len(DEFAULT_SEVERITY) == 13

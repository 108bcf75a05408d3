"""The alarm lifecycle (ThingsBoard-like), as pure functions of (status, action).

    active_unack ──ack──▶ active_ack
         │                    │
       clear                clear
         ▼                    ▼
    cleared_unack ──ack──▶ cleared_ack   (closed: nothing left to do)

`raise` of an already active (trip, type) is a repeat (count + 1), not a transition.
`assign` and `comment` keep the status; assigning a closed alarm is refused.
"""

from __future__ import annotations

from typing import Final, Literal, get_args

from server.rules.alarms import DEFAULT_SEVERITY as RULES_DEFAULT_SEVERITY

# The statuses are the store's (its index of active alarms is written from them).
from server.store.alarm_statuses import ACTIVE as ACTIVE
from server.store.alarm_statuses import CLEARED as CLEARED
from server.store.alarm_statuses import STATUSES as STATUSES
from server.store.alarm_statuses import Status as Status

Action = Literal["ack", "clear", "assign", "comment"]
Severity = Literal["critical", "major", "minor", "warning"]

ACTIONS: Final[tuple[Action, ...]] = get_args(Action)
SEVERITIES: Final[tuple[Severity, ...]] = get_args(Severity)  # most severe first
INITIAL: Final[Status] = "active_unack"

#: Severity rank: 0 is the most severe.
SEVERITY_RANK: Final[dict[str, int]] = {name: rank for rank, name in enumerate(SEVERITIES)}

#: Default severity of each contract alarm type (docs/contract.md): the rules' table.
DEFAULT_SEVERITY: Final[dict[str, Severity]] = dict(RULES_DEFAULT_SEVERITY.items())

_NEXT: Final[dict[tuple[Status, Action], Status]] = {
    ("active_unack", "ack"): "active_ack",
    ("cleared_unack", "ack"): "cleared_ack",
    ("active_unack", "clear"): "cleared_unack",
    ("active_ack", "clear"): "cleared_ack",
    ("active_unack", "assign"): "active_unack",
    ("active_ack", "assign"): "active_ack",
    ("cleared_unack", "assign"): "cleared_unack",
    **{(status, "comment"): status for status in STATUSES},
}

_WHY_REFUSED: Final[dict[Action, str]] = {
    "ack": "it is already acknowledged",
    "clear": "it is already cleared",
    "assign": "it is cleared and acknowledged (closed)",
    "comment": "",
}


class TransitionRefused(ValueError):
    """The action is not allowed in the alarm's current status."""

    def __init__(self, status: str, action: str, reason: str) -> None:
        super().__init__(f"cannot {action} an alarm in status {status}: {reason}")
        self.status = status
        self.action = action


def next_status(status: Status, action: Action) -> Status:
    """The status after `action`, or `TransitionRefused` naming why not."""
    if status not in STATUSES:
        raise TransitionRefused(status, action, "unknown status")
    if action not in ACTIONS:
        raise TransitionRefused(status, action, "unknown action")
    try:
        return _NEXT[(status, action)]
    except KeyError:
        raise TransitionRefused(status, action, _WHY_REFUSED[action]) from None

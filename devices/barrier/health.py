"""Health of the barrier controller from poll outcomes (pure: no I/O, no clocks).

`ok`: every one of the last `window` polls was answered at the first try and the
barrier reports no fault. `degraded`: the module answers, but some recent poll needed
a retry (lost or corrupted reply) or failed, the barrier or module reports a fault, or
the lane's traffic light could not be set.
`down`: `down_after` polls in a row got no valid reply. A change is reported once;
the same status again is not news.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from devices.barrier.codec import BarrierStatus
from devices.lifecycle import HealthStatus


@dataclass(frozen=True, slots=True)
class PollOutcome:
    """What one poll of the module gave."""

    status: BarrierStatus | None = None
    """The decoded status, None when the poll got no valid reply."""
    error: str | None = None
    """Why the poll failed (None when it was answered)."""
    retries: int = 0
    """Requests of this poll that had to be sent again."""
    crc_errors: int = 0
    """Replies of this poll that came back with a wrong CRC."""
    lamp_error: str | None = None
    """Why the lane's traffic light could not be set (None when it is as commanded)."""

    @property
    def answered(self) -> bool:
        return self.status is not None


@dataclass
class HealthTracker:
    """Folds poll outcomes into a health status; `feed` returns it when it changes."""

    down_after: int = 3
    window: int = 10
    status: HealthStatus | None = None
    detail: str = ""
    _failures_in_row: int = 0
    _recent: deque[PollOutcome] = field(default_factory=deque)

    def feed(self, outcome: PollOutcome) -> tuple[HealthStatus, str] | None:
        self._recent.append(outcome)
        while len(self._recent) > self.window:
            self._recent.popleft()
        if outcome.answered:
            self._failures_in_row = 0
        else:
            self._failures_in_row += 1
        status, detail = self._judge(outcome)
        self.detail = detail
        if status == self.status:
            return None
        self.status = status
        return status, detail

    def _judge(self, outcome: PollOutcome) -> tuple[HealthStatus, str]:
        if self._failures_in_row >= self.down_after:
            return "down", f"no valid reply for {self._failures_in_row} polls: {outcome.error}"
        problems: list[str] = []
        if not outcome.answered:
            problems.append(f"poll failed: {outcome.error}")
        failed = sum(1 for o in self._recent if not o.answered)
        retried = sum(1 for o in self._recent if o.answered and o.retries)
        crc = sum(o.crc_errors for o in self._recent)
        n = len(self._recent)
        if failed and outcome.answered:
            problems.append(f"{failed} of the last {n} polls failed")
        if retried:
            problems.append(f"{retried} of the last {n} polls needed a retry")
        if crc:
            problems.append(f"{crc} replies with a CRC error in the last {n} polls")
        if outcome.status is not None:
            if outcome.status.barrier == "fault":
                problems.append(f"barrier fault: {outcome.status.reason}")
            problems.extend(outcome.status.module_problems)
        if outcome.lamp_error is not None:
            problems.append(f"lane signal not set: {outcome.lamp_error}")
        if problems:
            return "degraded", "; ".join(problems)
        return "ok", "controller answering, barrier without fault"

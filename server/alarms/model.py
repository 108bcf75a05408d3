"""What an alarm looks like to its callers: frozen records read from the store."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from contract.ids import format_ts


@dataclass(frozen=True, slots=True)
class AlarmEvent:
    """One step of an alarm's history: who (account or `system`), when, from/to status."""

    id: int
    at: datetime
    actor: str
    action: str  # raise, ack, clear, assign, comment, escalate
    from_status: str | None
    to_status: str
    comment: str | None
    detail: str | None

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "at": format_ts(self.at),
            "actor": self.actor,
            "action": self.action,
            "from_status": self.from_status,
            "to_status": self.to_status,
            "comment": self.comment,
            "detail": self.detail,
        }


@dataclass(frozen=True, slots=True)
class Alarm:
    id: int
    type: str
    severity: str
    trip_id: str
    vehicle_id: str
    first_at: datetime
    last_at: datetime
    count: int
    position: tuple[float, float] | None  # (lon, lat), WGS-84
    status: str
    assignee: str | None
    detail: str
    cleared_at: datetime | None
    comments: tuple[AlarmEvent, ...] = ()
    history: tuple[AlarmEvent, ...] | None = None
    #: when the server escalated it (unacknowledged past the configured delay)
    escalated_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.status in ("active_unack", "active_ack")

    def as_json(self) -> dict[str, Any]:
        """The REST shape (docs/contract.md, `GET /alarms`), with `position` as a GeoJSON Point."""
        out: dict[str, Any] = {
            "id": self.id,
            "type": self.type,
            "severity": self.severity,
            "trip_id": self.trip_id,
            "vehicle_id": self.vehicle_id,
            "first_at": format_ts(self.first_at),
            "last_at": format_ts(self.last_at),
            "count": self.count,
            "position": (
                {"type": "Point", "coordinates": list(self.position)} if self.position else None
            ),
            "status": self.status,
            "assignee": self.assignee,
            "detail": self.detail,
            "cleared_at": format_ts(self.cleared_at) if self.cleared_at else None,
            "escalated_at": format_ts(self.escalated_at) if self.escalated_at else None,
            "comments": [
                {"at": format_ts(c.at), "actor": c.actor, "action": c.action, "text": c.comment}
                for c in self.comments
            ],
        }
        if self.history is not None:
            out["history"] = [e.as_json() for e in self.history]
        return out


@dataclass(frozen=True, slots=True)
class RaiseOutcome:
    """What a raise did: opened alarm `alarm_id` (`new`), or counted a repeat of it."""

    alarm_id: int
    new: bool
    count: int


@runtime_checkable
class RaiseEffect(Protocol):
    """A rule's effect `Raise(alarm_type, severity, at, position, detail)` (server.rules)."""

    @property
    def alarm_type(self) -> str: ...
    @property
    def severity(self) -> str: ...
    @property
    def at(self) -> datetime: ...
    @property
    def position(self) -> tuple[float, float] | None: ...
    @property
    def detail(self) -> str: ...


@runtime_checkable
class ClearEffect(Protocol):
    """A rule's effect `Clear(alarm_type, at, detail)`: the condition is gone."""

    @property
    def alarm_type(self) -> str: ...
    @property
    def at(self) -> datetime: ...
    @property
    def detail(self) -> str: ...

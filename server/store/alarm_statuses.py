"""The statuses an alarm row takes, in one place: the alarm lifecycle
(`server.alarms.lifecycle`) moves between them, and the schema's partial index of
active alarms (`server.store.schema`) is written from them."""

from __future__ import annotations

from typing import Final, Literal, get_args

Status = Literal["active_unack", "active_ack", "cleared_unack", "cleared_ack"]

STATUSES: Final[tuple[Status, ...]] = get_args(Status)
ACTIVE: Final[tuple[Status, ...]] = ("active_unack", "active_ack")
CLEARED: Final[tuple[Status, ...]] = ("cleared_unack", "cleared_ack")


def status_in(statuses: tuple[Status, ...]) -> str:
    """`status IN (...)` as literal SQL (the statuses are fixed names, never input)."""
    return "status IN (" + ", ".join(f"'{s}'" for s in statuses) + ")"

"""Alarms: one active alarm per (trip, type) counting repeats, the ThingsBoard-like
lifecycle (ack, clear, assign, comment) with its history, and officer actions audited."""

from server.alarms.lifecycle import (
    DEFAULT_SEVERITY,
    SEVERITIES,
    STATUSES,
    TransitionRefused,
    next_status,
)
from server.alarms.model import Alarm, AlarmEvent, ClearEffect, RaiseEffect, RaiseOutcome
from server.alarms.service import SYSTEM, AlarmQuery, AlarmService

__all__ = [
    "DEFAULT_SEVERITY",
    "SEVERITIES",
    "STATUSES",
    "SYSTEM",
    "Alarm",
    "AlarmEvent",
    "AlarmQuery",
    "AlarmService",
    "ClearEffect",
    "RaiseEffect",
    "RaiseOutcome",
    "TransitionRefused",
    "next_status",
]

"""Geofence and alarm rules as pure functions: (state, input, context) → (state, effects)."""

from server.rules.alarms import (
    ALARM_TYPES,
    DEFAULT_SEVERITY,
    AlarmType,
    Clear,
    Effect,
    Raise,
    Severity,
)
from server.rules.engine import Event, evaluate, tick
from server.rules.inputs import Fix, TripContext
from server.rules.profiles import (
    CREDIT_CLASSES,
    DEFAULT_PROFILES,
    CreditClass,
    CreditProfile,
    ProfileConfigError,
    load_profiles,
    profiles_from_mapping,
)
from server.rules.state import TripState

__all__ = [
    "ALARM_TYPES",
    "CREDIT_CLASSES",
    "DEFAULT_PROFILES",
    "DEFAULT_SEVERITY",
    "AlarmType",
    "Clear",
    "CreditClass",
    "CreditProfile",
    "Effect",
    "Event",
    "Fix",
    "ProfileConfigError",
    "Raise",
    "Severity",
    "TripContext",
    "TripState",
    "evaluate",
    "load_profiles",
    "profiles_from_mapping",
    "tick",
]

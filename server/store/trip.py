"""A trip as the store holds it (table `trips`): one per declaration."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple


@dataclass(frozen=True)
class Trip:
    trip_id: str
    declaration_id: str
    vehicle_id: str
    route_id: str
    #: `declared`, `in_transit`, `arrived`, `held`, `released` or `closed` (docs/gates.md)
    status: str
    created_at: datetime
    #: at its departure gate (or its first fix, `trips.start_on_first_fix`)
    started_at: datetime | None
    #: released at its arrival gate
    ended_at: datetime | None
    time_limit_min: int


class TripHead(NamedTuple):
    """What the judge asks of each vehicle's open trip in every batch: whether the run
    it holds is still the one to judge (the whole `Trip` is read for a new run only)."""

    trip_id: str
    status: str
    started: bool

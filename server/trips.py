"""Trip lifecycle on the ingest path.

A registered declaration opens a trip (`declared`). The departure gate starts it: the
passage matches and the lock is sealed → the server signs an *open* command and the
trip goes `in_transit` with `started_at` = the passage time (`server.gates.service`).
At the arrival gate it becomes `released` or `held` (an officer may override).

Fallback for sites without a departure gate controller (and demos): with
`trips.start_on_first_fix`, the first fix of the vehicle after registration starts
the trip instead.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from contract.payloads import Position
from server.store import Store
from server.store.database import IncomingMessage

log = logging.getLogger(__name__)


class TripTracker:
    def __init__(self, store: Store, start_on_first_fix: bool = False) -> None:
        self._store = store
        self.start_on_first_fix = start_on_first_fix

    async def on_messages(self, batch: Sequence[IncomingMessage]) -> None:
        if self.start_on_first_fix:
            await asyncio.to_thread(self._apply, batch)

    def _apply(self, batch: Sequence[IncomingMessage]) -> None:
        first_fix: dict[str, Position] = {}
        for item in batch:
            msg = item.message
            if isinstance(msg, Position) and msg.fix != "none":
                known = first_fix.get(msg.node_id)
                if known is None or msg.ts < known.ts:
                    first_fix[msg.node_id] = msg
        trips = self._store.open_trip_heads(first_fix)
        for vehicle_id, fix in first_fix.items():
            trip = trips.get(vehicle_id)
            if trip is not None and trip.status == "declared":
                self._store.start_trip(trip.trip_id, fix.ts)
                log.info(
                    "trip %s of %s started at its first fix %s", trip.trip_id, vehicle_id, fix.ts
                )

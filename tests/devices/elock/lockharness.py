"""A driver under test: collects its events and health reports, waits for an event."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from devices.elock.driver import ElockDriver, LockEvent


class Harness:
    def __init__(self, driver: ElockDriver) -> None:
        self.driver = driver
        self.events: list[LockEvent] = []
        self.health: list[tuple[str, str]] = []
        self._changed = asyncio.Event()

    async def on_event(self, event: LockEvent) -> None:
        self.events.append(event)
        self._changed.set()

    async def on_health(self, status: str, detail: str) -> None:
        self.health.append((status, detail))

    async def wait_for(
        self, predicate: Callable[[LockEvent], bool], within_s: float = 5
    ) -> LockEvent:
        async def scan() -> LockEvent:
            seen = 0
            while True:
                for event in self.events[seen:]:
                    if predicate(event):
                        return event
                seen = len(self.events)
                self._changed.clear()
                await self._changed.wait()

        return await asyncio.wait_for(scan(), within_s)

"""What every device driver shares: its health words, health reported once per change,
and a lost device reopened with doubling waits, logged once when lost and once when back.

The GNSS receiver, the e-lock and the barrier controller drivers use `DeviceLink`; their
configurations name the waits `reconnect_min_s` and `reconnect_max_s` (the broker link's
names too). `renamed_keys` accepts the names of earlier releases with a warning
(`FutureWarning`: shown by default, it is meant for whoever wrote the configuration).
"""

from __future__ import annotations

import asyncio
import logging
import warnings
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Literal

#: A device's health, as every driver reports it and the MQTT contract carries it.
HealthStatus = Literal["ok", "degraded", "down"]
HealthCallback = Callable[[HealthStatus, str], Awaitable[None]]


class Backoff:
    """Doubling waits from `min_s` up to `max_s`; `reset` after a success."""

    def __init__(self, min_s: float, max_s: float) -> None:
        if not 0 < min_s <= max_s:
            raise ValueError(f"need 0 < min_s <= max_s, got {min_s:g} and {max_s:g}")
        self.min_s = min_s
        self.max_s = max_s
        self.delay_s = min_s

    def next(self) -> float:
        """The wait to take now; the one after it is twice as long (at most `max_s`)."""
        delay, self.delay_s = self.delay_s, min(self.delay_s * 2, self.max_s)
        return delay

    def reset(self) -> None:
        self.delay_s = self.min_s

    async def wait(self) -> None:
        await asyncio.sleep(self.next())


class DeviceLink:
    """One driver's device: its health (reported when it changes), its loss and return
    (each logged once), and the backoff between attempts to reopen it."""

    def __init__(
        self,
        name: str,
        logger: logging.Logger,
        reconnect_min_s: float,
        reconnect_max_s: float,
    ) -> None:
        self.name = name
        self.backoff = Backoff(reconnect_min_s, reconnect_max_s)
        self.health: tuple[HealthStatus, str] | None = None
        self.on_health: HealthCallback | None = None
        self.lost = False
        self._log = logger

    async def set_health(self, status: HealthStatus, detail: str) -> bool:
        """Report `status` if it is news (the same status again is not); True if it was."""
        if self.health is not None and self.health[0] == status:
            return False
        self.health = (status, detail)
        log = self._log.info if status == "ok" else self._log.warning
        log("%s: health %s (%s)", self.name, status, detail)
        if self.on_health is not None:
            await self.on_health(status, detail)
        return True

    async def down(self, detail: str) -> None:
        """The device is gone (`detail` says why): logged the first time, health `down`."""
        if not self.lost:
            self._log.warning("%s: device lost: %s", self.name, detail)
            self.lost = True
        await self.set_health("down", detail)

    def back(self) -> None:
        """The device answers again: logged once, and the next loss waits `min_s` first."""
        if self.lost:
            self._log.info("%s: device back", self.name)
            self.lost = False
        self.backoff.reset()


def renamed_keys(data: Any, renames: Mapping[str, str], where: str) -> Any:
    """`data` with each old key of `renames` under its new name, with a `FutureWarning`;
    both names at once is an error. For a `model_validator(mode="before")`."""
    if not isinstance(data, Mapping):
        return data
    out = dict(data)
    for old, new in renames.items():
        if old not in out:
            continue
        if new in out:
            raise ValueError(f"{where}: give `{new}` only (`{old}` is its old name)")
        warnings.warn(f"{where}: `{old}` is deprecated, use `{new}`", FutureWarning, stacklevel=2)
        out[new] = out.pop(old)
    return out

"""The truck agent: reads the GNSS receiver and publishes positions through the outbox."""

from __future__ import annotations

import asyncio
import logging
import time

from devices.gnss.codec import GnssFix
from devices.gnss.driver import GnssDriver

from contract import topics
from contract.ids import format_ts, utc_now
from edge.config import TruckConfig
from edge.link import MqttLink
from edge.outbox import Outbox
from edge.truck.policy import Sample, should_report
from edge.truck.position import position_payload, sample_of

log = logging.getLogger(__name__)


class TruckAgent:
    def __init__(self, config: TruckConfig) -> None:
        self.config = config
        config.state_dir.mkdir(parents=True, exist_ok=True)
        self.outbox = Outbox(
            config.state_dir / "outbox.sqlite3",
            config.node_id,
            max_bytes=int(config.outbox_max_mb * 1024 * 1024),
        )
        self.link = MqttLink(
            config.broker, "truck", config.node_id, self.outbox, on_command=self._on_command
        )
        self.gnss = GnssDriver(config.gnss)
        self._last: Sample | None = None

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(self.link.run(), name="mqtt-link")
            group.create_task(self.gnss.run(self._on_fix, self._on_gnss_health), name="gnss")

    async def _on_fix(self, fix: GnssFix) -> None:
        sample = sample_of(fix, time.monotonic())
        if not should_report(self.config.reporting, self._last, sample):
            return
        self._last = sample
        self.outbox.enqueue(
            topics.position(self.config.node_id), position_payload(self.config.node_id, fix)
        )
        self.link.notify()

    async def _on_gnss_health(self, status: str, detail: str) -> None:
        self._health("gnss", status, detail)

    def _health(self, device: str, status: str, detail: str) -> None:
        log.info("%s %s: %s (%s)", self.config.node_id, device, status, detail)
        self.outbox.enqueue(
            topics.health("truck", self.config.node_id),
            {
                "node_id": self.config.node_id,
                "ts": format_ts(utc_now()),
                "device": device,
                "status": status,
                "detail": detail,
            },
        )
        self.link.notify()

    async def _on_command(self, raw: bytes) -> None:
        log.warning(
            "%s: commands are not handled yet; ignoring %d bytes", self.config.node_id, len(raw)
        )

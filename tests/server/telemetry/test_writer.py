"""Telemetry through influxdb-client to a real InfluxDB v2 write endpoint (VictoriaMetrics)."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import urllib.parse
import urllib.request
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from contract.ids import utc_now
from contract.payloads import Position
from server.alarms import AlarmService
from server.metrics import Metrics
from server.store.database import IncomingMessage
from server.telemetry import TelemetrySettings, TelemetryWriter
from server.telemetry.writer import FAILURES, POINTS
from tests.server.telemetry.conftest import Victoria, free_port, start_victoria

NOW = utc_now().replace(microsecond=0)


def incoming(seq: int, node: str = "TRK-1", **over: Any) -> IncomingMessage:
    body: dict[str, Any] = {
        "node_id": node,
        "seq": seq,
        "ts": NOW - timedelta(seconds=600 - seq),
        "lat": 23.0 + seq / 1000,
        "lon": 113.0 + seq / 1000,
        "speed_kmh": 60.0 + seq % 7,
        "fix": "3d",
        "sats": 10,
        "hdop": 0.9,
    }
    body.update(over)
    msg = Position.model_validate(body)
    return IncomingMessage("position", msg, msg.model_dump_json(), NOW)


def settings(url: str, **over: Any) -> TelemetrySettings:
    base: dict[str, Any] = {
        "url": url,
        "org": "customs",
        "bucket": "bondwatch",
        "flush_interval_s": 0.05,
        "batch_max": 200,
    }
    base.update(over)
    return TelemetrySettings(**base)


def export(url: str, match: str) -> list[dict[str, Any]]:
    query = urllib.parse.urlencode({"match[]": match})
    with urllib.request.urlopen(f"{url}/api/v1/export?{query}", timeout=5) as res:
        return [json.loads(line) for line in res.read().decode().splitlines() if line]


def wait_export(url: str, match: str, points: int, timeout: float = 20.0) -> list[dict[str, Any]]:
    """The exported series once they hold `points` values in all (VictoriaMetrics makes
    fresh rows searchable only after a flush)."""
    deadline = time.monotonic() + timeout
    series: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        urllib.request.urlopen(f"{url}/internal/force_flush", timeout=5).close()
        series = export(url, match)
        if sum(len(s["values"]) for s in series) >= points:
            return series
        time.sleep(0.25)
    got = sum(len(s["values"]) for s in series)
    raise AssertionError(f"{match}: {got} of {points} points arrived")


async def run_until(writer: TelemetryWriter, done: Any, store: Any = None) -> None:
    task = asyncio.create_task(writer.run(store))
    try:
        for _ in range(400):
            if done():
                return
            await asyncio.sleep(0.05)
        raise AssertionError("telemetry writer did not finish in time")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_positions_are_written_and_read_back(victoria: Victoria) -> None:
    metrics = Metrics()
    writer = TelemetryWriter(settings(victoria.url), metrics)
    batch = [incoming(seq) for seq in range(1, 501)]
    batch += [incoming(seq, node="TRK-2") for seq in range(1, 101)]
    batch.append(incoming(999, node="TRK-3", fix="none", lat=None, lon=None))  # no fix: skipped
    await writer.on_messages(batch)
    assert writer.queued == 600
    await run_until(writer, lambda: metrics.value(POINTS, outcome="written") >= 600)
    assert metrics.value(FAILURES) == 0

    lat = wait_export(victoria.url, '{__name__="position_lat"}', 600)
    by_vehicle = {s["metric"]["vehicle_id"]: s for s in lat}
    assert set(by_vehicle) == {"TRK-1", "TRK-2"}
    one = by_vehicle["TRK-1"]
    assert one["metric"]["fix"] == "3d"
    assert len(one["values"]) == 500
    stamps = dict(zip(one["timestamps"], one["values"], strict=True))
    first_ms = int((NOW - timedelta(seconds=599)).timestamp() * 1000)
    assert stamps[first_ms] == pytest.approx(23.001)
    last_ms = int((NOW - timedelta(seconds=100)).timestamp() * 1000)
    assert stamps[last_ms] == pytest.approx(23.5)
    seq = wait_export(victoria.url, '{__name__="position_seq",vehicle_id="TRK-2"}', 100)
    assert sorted(seq[0]["values"]) == list(range(1, 101))
    speed = wait_export(victoria.url, '{__name__="position_speed_kmh",vehicle_id="TRK-1"}', 500)
    assert speed[0]["values"][0] == pytest.approx(61.0)


async def test_active_alarm_counts(victoria: Victoria, services: Any) -> None:
    alarms = AlarmService(services.store.engine)
    at = utc_now()
    alarms.raise_("T-1", "TRK-1", "ROUTE_DEVIATION", "major", at, (113.5, 23.1), "{}")
    alarms.raise_("T-2", "TRK-2", "ROUTE_DEVIATION", "major", at, None, "{}")
    alarms.raise_("T-2", "TRK-2", "LOCK_TAMPER", "critical", at, None, "{}")
    alarms.raise_("T-3", "TRK-3", "OVERSPEED", "minor", at, None, "{}")
    alarms.clear("T-3", "OVERSPEED", at, "{}")
    metrics = Metrics()
    writer = TelemetryWriter(settings(victoria.url, alarm_interval_s=3600), metrics)
    await run_until(writer, lambda: metrics.value(POINTS, outcome="written") >= 3, services.store)
    series = wait_export(victoria.url, '{__name__="alarms_active"}', 2)
    counts = {(s["metric"]["type"], s["metric"]["severity"]): s["values"][-1] for s in series}
    assert counts == {("ROUTE_DEVIATION", "major"): 2, ("LOCK_TAMPER", "critical"): 1}
    total = wait_export(victoria.url, '{__name__="alarms_total_active"}', 1)
    assert total[0]["values"][-1] == 3


async def test_outage_keeps_points_and_logs_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    metrics = Metrics()
    writer = TelemetryWriter(settings(url, timeout_s=1.0), metrics)
    await writer.on_messages([incoming(seq) for seq in range(1, 301)])
    caplog.set_level(logging.WARNING, logger="server.telemetry.writer")
    task = asyncio.create_task(writer.run())
    vm = None
    try:
        for _ in range(200):
            if metrics.value(FAILURES) >= 3:
                break
            await asyncio.sleep(0.05)
        assert metrics.value(FAILURES) >= 3
        assert writer.queued == 300  # nothing lost while the database is away
        failed = [r for r in caplog.records if "failed" in r.getMessage()]
        assert len(failed) == 1, [r.getMessage() for r in caplog.records]
        vm = start_victoria(tmp_path / "vm", port)
        for _ in range(400):
            if metrics.value(POINTS, outcome="written") >= 300:
                break
            await asyncio.sleep(0.05)
        assert metrics.value(POINTS, outcome="written") == 300
        assert writer.failing_since is None
        back = [r for r in caplog.records if "reachable again" in r.getMessage()]
        assert len(back) == 1
        wait_export(url, '{__name__="position_lon"}', 300)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        if vm is not None:
            vm.stop()


async def test_full_queue_drops_oldest_and_never_waits() -> None:
    metrics = Metrics()
    writer = TelemetryWriter(settings("http://127.0.0.1:9", queue_max=100), metrics)
    started = time.perf_counter()
    for start in range(0, 1000, 100):
        await writer.on_messages([incoming(seq) for seq in range(start + 1, start + 101)])
    assert time.perf_counter() - started < 1.0
    assert writer.queued == 100
    assert metrics.value(POINTS, outcome="dropped") == 900


def test_token_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BW_TEST_INFLUX_TOKEN", "s3cret")
    writer = TelemetryWriter(
        settings("http://127.0.0.1:9", token_env="BW_TEST_INFLUX_TOKEN"), Metrics()
    )
    assert writer._client.token == "s3cret"

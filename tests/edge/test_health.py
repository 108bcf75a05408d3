"""The node's health reporter: one message per change, a lost device logged once, its
return once, with the node and the device in the line."""

import logging

import pytest

from contract import topics
from contract.payloads import Health, decode
from edge.health import HealthReporter
from edge.outbox import Outbox

NODE = "TRK-H-1"


@pytest.fixture
def reporter(tmp_path):
    box = Outbox(tmp_path / "o.db", NODE, 1_000_000, min_free_disk_bytes=0)
    yield HealthReporter("truck", NODE, box, f"truck {NODE}")
    box.close()


def published(reporter: HealthReporter) -> list[Health]:
    return [decode(Health, item.payload) for item in reporter.outbox.pending(1000)]


def test_a_lost_device_is_logged_once_and_its_return_once(reporter, caplog):
    caplog.set_level(logging.DEBUG, logger="edge.health")
    reporter.report("gnss", "ok", "3D fix, 12 sats")
    for attempt in range(6):  # the driver retrying; it may report `down` again
        reporter.report("gnss", "down", f"cannot open /dev/ttyS1: attempt {attempt}")
    reporter.report("gnss", "degraded", "receiver sends data but has no fix")
    reporter.report("gnss", "ok", "3D fix, 9 sats")

    lines = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert lines == [
        ("INFO", f"truck {NODE}: gnss ok: 3D fix, 12 sats"),
        ("WARNING", f"truck {NODE}: gnss lost: cannot open /dev/ttyS1: attempt 0"),
        ("INFO", f"truck {NODE}: gnss returned, degraded: receiver sends data but has no fix"),
        ("INFO", f"truck {NODE}: gnss ok: 3D fix, 9 sats"),
    ]
    assert [(h.device, h.status) for h in published(reporter)] == [
        ("gnss", "ok"),
        ("gnss", "down"),
        ("gnss", "degraded"),
        ("gnss", "ok"),
    ]
    assert all(item.topic == topics.health("truck", NODE) for item in reporter.outbox.pending(9))


def test_devices_are_kept_apart_and_only_pluggable_ones_are_lost(reporter, caplog):
    caplog.set_level(logging.INFO, logger="edge.health")
    reporter.report("lock", "down", "port /dev/ttyS2 lost: EOF")
    reporter.report("gnss", "down", "no NMEA data for 5 s")
    reporter.report("outbox", "down", "outbox full of evidence")
    reporter.report("lock", "ok", "frames arriving")
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [
        f"truck {NODE}: lock lost: port /dev/ttyS2 lost: EOF",
        f"truck {NODE}: gnss lost: no NMEA data for 5 s",
        f"truck {NODE}: outbox down: outbox full of evidence",
        f"truck {NODE}: lock returned, ok: frames arriving",
    ]
    assert reporter.status("gnss") == "down" and reporter.status("lock") == "ok"


def test_a_long_detail_is_cut_to_the_contract(reporter):
    reporter.report("camera", "degraded", "x" * 5000)
    (health,) = published(reporter)
    assert health.status == "degraded" and len(health.detail) == 1000

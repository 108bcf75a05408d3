"""The drivers' shared lifecycle (devices.lifecycle): backoff, health once per change,
loss and return logged once, and the old configuration key names still read."""

import logging

import pytest
from pydantic import ValidationError

from devices.barrier.driver import ModbusBarrierConfig
from devices.camera.config import CameraConfig
from devices.elock.driver import Jt808LockConfig
from devices.gnss.driver import NmeaGnssConfig
from devices.lifecycle import Backoff, DeviceLink


def test_backoff_doubles_up_to_its_limit_and_resets():
    backoff = Backoff(0.5, 3.0)
    assert [backoff.next() for _ in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    backoff.reset()
    assert backoff.next() == 0.5
    with pytest.raises(ValueError, match="min_s <= max_s"):
        Backoff(2.0, 1.0)


async def test_health_reported_once_per_change_and_loss_logged_once(caplog):
    reported: list[tuple[str, str]] = []

    async def on_health(status, detail):
        reported.append((status, detail))

    link = DeviceLink("gnss /dev/ttyX", logging.getLogger("test.lifecycle"), 0.1, 1.0)
    link.on_health = on_health
    caplog.set_level(logging.INFO, logger="test.lifecycle")
    assert await link.set_health("ok", "3D fix")
    assert not await link.set_health("ok", "3D fix, 9 sats")
    for attempt in range(3):
        await link.down(f"cannot open: attempt {attempt}")
        link.backoff.next()
    link.back()
    assert link.backoff.next() == 0.1
    assert reported == [("ok", "3D fix"), ("down", "cannot open: attempt 0")]
    lines = [r.getMessage() for r in caplog.records]
    assert lines.count("gnss /dev/ttyX: device lost: cannot open: attempt 0") == 1
    assert not any("attempt 1" in line for line in lines)
    assert lines.count("gnss /dev/ttyX: device back") == 1
    assert link.health == ("down", "cannot open: attempt 0")


def test_one_name_for_the_reconnect_waits_in_every_driver():
    for model in (NmeaGnssConfig, Jt808LockConfig, ModbusBarrierConfig, CameraConfig):
        assert "reconnect_max_s" in model.model_fields, model.__name__
    for model in (NmeaGnssConfig, Jt808LockConfig, CameraConfig):
        assert "reconnect_min_s" in model.model_fields, model.__name__


def test_old_key_names_still_read_with_a_warning():
    with pytest.warns(FutureWarning, match="`reconnect_initial_s` is deprecated"):
        lock = Jt808LockConfig.model_validate(
            {"type": "jt808", "port": "loop://", "lock_ids": ["L1"], "reconnect_initial_s": 0.2}
        )
    assert lock.reconnect_min_s == 0.2
    with pytest.warns(FutureWarning, match="`backoff_max_s` is deprecated"):
        barrier = ModbusBarrierConfig.model_validate(
            {"type": "modbus_rtu", "port": "loop://", "unit_id": 1, "backoff_max_s": 4.0}
        )
    assert barrier.reconnect_max_s == 4.0
    with pytest.warns(FutureWarning, match="camera"):
        camera = CameraConfig.model_validate(
            {"type": "opencv", "url": "file.mp4", "reconnect_initial_s": 1.0}
        )
    assert camera.reconnect_min_s == 1.0


def test_old_and_new_name_together_is_an_error():
    with pytest.raises(ValidationError, match="give `reconnect_min_s` only"):
        Jt808LockConfig.model_validate(
            {
                "type": "jt808",
                "port": "loop://",
                "lock_ids": ["L1"],
                "reconnect_initial_s": 0.2,
                "reconnect_min_s": 0.3,
            }
        )

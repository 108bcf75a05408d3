"""The lock's state machine without I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from devices.elock import profile
from devices.elock.authorisation import make_unseal_token
from devices.elock.block import Area, BondWatchBlock
from firmware_stubs.elock.lock import LockFirmware, distance_m

NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
SITE = Area(22.5, 113.9, 300)


def _lock() -> LockFirmware:
    return LockFirmware("L1", b"k", lat=22.5, lon=113.9, area=SITE)


def _cmd(
    name: profile.CommandName,
    trip: str | None = "T1",
    token: bytes | None = None,
    area: Area | None = None,
    lock_id: str = "L1",
) -> BondWatchBlock:
    return BondWatchBlock(
        lock_id=lock_id, command=profile.COMMAND_CODES[name], trip_id=trip, token=token, area=area
    )


def _token(trip: str = "T1", secret: bytes = b"k") -> bytes:
    return make_unseal_token(secret, "L1", trip, NOW + timedelta(minutes=5))


def _result(answer: BondWatchBlock) -> tuple[str, str]:
    assert answer.command_result is not None
    return answer.command_result.result_name, answer.command_result.reason_name


def test_seal_then_unseal_inside_area() -> None:
    lock = _lock()
    answer, events = lock.command(1, _cmd("seal"), NOW)
    assert _result(answer) == ("done", "")
    assert events == ["sealed"]
    assert lock.state == "sealed"
    answer, events = lock.command(2, _cmd("unseal", token=_token()), NOW)
    assert _result(answer) == ("done", "")
    assert events == ["unsealed"]
    assert answer.state_name == "unsealed"


def test_unseal_outside_area_is_refused() -> None:
    lock = _lock()
    lock.command(1, _cmd("seal"), NOW)
    lock.lat = 22.51  # ~1.1 km north of the site centre
    answer, events = lock.command(2, _cmd("unseal", token=_token()), NOW)
    assert _result(answer) == ("refused", "outside_area")
    assert events == ["unseal_refused_outside_area"]
    assert lock.state == "sealed"


def test_no_area_or_position_fails_closed() -> None:
    lock = _lock()
    lock.command(1, _cmd("seal"), NOW)
    lock.area = None
    assert _result(lock.command(2, _cmd("unseal", token=_token()), NOW)[0]) == (
        "refused",
        "no_area",
    )
    lock.area, lock.lat = SITE, None
    assert _result(lock.command(3, _cmd("unseal", token=_token()), NOW)[0]) == (
        "refused",
        "no_position",
    )


def test_wrong_passwords_are_counted() -> None:
    lock = _lock()
    lock.command(1, _cmd("seal"), NOW)
    for serial in (2, 3):
        answer, events = lock.command(serial, _cmd("unseal", token=_token(secret=b"x")), NOW)
        assert _result(answer) == ("refused", "bad_token")
        assert events == ["wrong_password"]
    assert lock.wrong_passwords == 2
    assert answer.wrong_passwords == 2
    assert lock.block("status").wrong_passwords == 2
    lock.command(4, _cmd("unseal", token=_token()), NOW)
    assert lock.wrong_passwords == 0


def test_expired_and_wrong_trip_tokens() -> None:
    lock = _lock()
    lock.command(1, _cmd("seal"), NOW)
    late = NOW + timedelta(hours=1)
    assert _result(lock.command(2, _cmd("unseal", token=_token()), late)[0]) == (
        "refused",
        "token_expired",
    )
    assert _result(lock.command(3, _cmd("unseal", trip="T2", token=_token("T2")), NOW)[0]) == (
        "refused",
        "wrong_trip",
    )
    assert lock.wrong_passwords == 0


def test_repeated_serial_is_not_carried_out_twice() -> None:
    lock = _lock()
    first, events = lock.command(9, _cmd("seal"), NOW)
    again, events_again = lock.command(9, _cmd("seal"), NOW)
    assert again == first
    assert events == ["sealed"]
    assert events_again == []


def test_faults() -> None:
    lock = _lock()
    lock.command(1, _cmd("seal"), NOW)
    assert lock.shackle_opened() == ["shackle_opened"]
    assert lock.state == "open"
    assert _result(lock.command(2, _cmd("seal", trip="T2"), NOW)[0]) == ("refused", "shackle_open")
    lock.shackle_closed_again()
    lock.motor_stuck = True
    answer, events = lock.command(3, _cmd("seal", trip="T2"), NOW)
    assert _result(answer) == ("failed", "motor_stuck")
    assert events == ["motor_stuck"]
    assert lock.rope_cut() == ["rope_cut"]
    assert lock.state == "open"
    assert lock.shell_tampered() == ["shell_tampered"]


def test_low_battery_once_per_crossing() -> None:
    lock = _lock()
    assert lock.set_battery(21) == []
    assert lock.drain(1) == ["low_battery"]
    assert lock.drain(1) == []
    assert lock.set_battery(80) == []
    assert lock.set_battery(10) == ["low_battery"]


def test_wrong_lock_and_set_area() -> None:
    lock = _lock()
    assert _result(lock.command(1, _cmd("seal", lock_id="L9"), NOW)[0]) == ("refused", "wrong_lock")
    lock.command(2, _cmd("seal"), NOW)
    far = Area(23.0, 114.0, 100)
    assert _result(lock.command(3, _cmd("set_area", token=_token(), area=far), NOW)[0]) == (
        "done",
        "",
    )
    assert lock.area == far


def test_distance() -> None:
    assert abs(distance_m(22.5, 113.9, 22.51, 113.9) - 1112) < 2

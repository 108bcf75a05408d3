"""Lock tokens (seal, unseal, set_area) and report MACs: bound, single-use, unforgeable."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from devices.elock.authorisation import TOKEN_BYTES, TokenAction, check_token, make_token
from devices.elock.block import Area
from devices.elock.report_mac import MAC_BYTES, check_report_mac, report_mac

NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
LATER = NOW + timedelta(minutes=10)
SECRET = b"per-lock-secret-0001"
AREA = Area(22.5431, 113.9, 500)

ids = st.text(st.characters(codec="ascii", categories=["L", "N"]), min_size=1, max_size=32)
actions = st.sampled_from(["seal", "unseal", "set_area"])
counters = st.integers(1, 2**64 - 1)
areas = st.builds(
    Area,
    st.integers(-90_000_000, 90_000_000).map(lambda v: v / 1e6),
    st.integers(-180_000_000, 180_000_000).map(lambda v: v / 1e6),
    st.integers(0, 2**32 - 1),
)


def token(action: TokenAction = "unseal", counter: int = 7, **over: object) -> bytes:
    args: dict[str, object] = {
        "secret": SECRET,
        "lock_id": "L1",
        "action": action,
        "trip_id": "TRIP-7",
        "counter": counter,
        "expires_at": LATER,
        "area": AREA if action == "set_area" else None,
    }
    args.update(over)
    return make_token(**args)  # type: ignore[arg-type]


def test_good_token_checks_offline_once() -> None:
    good = token()
    assert len(good) == TOKEN_BYTES == 30
    first = check_token(SECRET, "L1", "unseal", "TRIP-7", good, NOW, last_counter=0)
    assert first == ("ok", 7)
    # the lock keeps 7: the same token again, or any older one, is refused
    assert check_token(SECRET, "L1", "unseal", "TRIP-7", good, NOW, 7).result == "token_reused"
    older = token(counter=6)
    assert check_token(SECRET, "L1", "unseal", "TRIP-7", older, NOW, 7).result == "token_reused"
    newer = token(counter=8)
    assert check_token(SECRET, "L1", "unseal", "TRIP-7", newer, NOW, 7) == ("ok", 8)


@given(
    action=actions,
    lock_id=ids,
    trip_id=ids,
    counter=counters,
    area=areas,
    seconds=st.integers(0, 2**32 - 1),
)
def test_round_trip_any_token(
    action: TokenAction, lock_id: str, trip_id: str, counter: int, area: Area, seconds: int
) -> None:
    expires = datetime.fromtimestamp(seconds, UTC)
    bound = area if action == "set_area" else None
    made = make_token(SECRET, lock_id, action, trip_id, counter, expires, bound)
    assert len(made) == TOKEN_BYTES
    verdict = check_token(SECRET, lock_id, action, trip_id, made, expires, counter - 1, bound)
    assert verdict == ("ok", counter)
    again = check_token(SECRET, lock_id, action, trip_id, made, expires, counter, bound)
    assert again.result == "token_reused"


@given(
    action=actions,
    other_action=actions,
    other_lock=ids,
    other_trip=ids,
    other_area=areas,
)
def test_token_is_bound_to_lock_action_trip_and_area(
    action: TokenAction,
    other_action: TokenAction,
    other_lock: str,
    other_trip: str,
    other_area: Area,
) -> None:
    made = token(action)
    area = AREA if action == "set_area" else None

    def check(**over: object) -> str:
        args: dict[str, object] = {
            "secret": SECRET,
            "lock_id": "L1",
            "action": action,
            "trip_id": "TRIP-7",
            "token": made,
            "now": NOW,
            "last_counter": 0,
            "area": area,
        }
        args.update(over)
        return check_token(**args).result  # type: ignore[arg-type]

    assert check() == "ok"
    if other_lock != "L1":
        assert check(lock_id=other_lock) == "bad_token"
    if other_trip != "TRIP-7":
        assert check(trip_id=other_trip) == "bad_token"
    if other_action != action:
        with_area = other_area if other_action == "set_area" else None
        assert check(action=other_action, area=with_area) == "bad_token"
    if action == "set_area" and other_area.pack() != AREA.pack():
        assert check(area=other_area) == "bad_token"
    assert check(secret=b"another-lock-secret") == "bad_token"


@given(position=st.integers(0, TOKEN_BYTES - 1), flip=st.integers(1, 255))
def test_any_changed_byte_is_refused(position: int, flip: int) -> None:
    made = bytearray(token(counter=1000))
    made[position] ^= flip
    verdict = check_token(SECRET, "L1", "unseal", "TRIP-7", bytes(made), NOW, 0)
    # a raised counter or a stretched expiry breaks the tag like any other byte
    assert verdict.result == "bad_token"


@given(data=st.binary(max_size=64))
def test_arbitrary_bytes_are_a_bad_token_never_an_error(data: bytes) -> None:
    assert check_token(SECRET, "L1", "unseal", "T", data, NOW, 0).result == "bad_token"


def test_expiry_is_enforced() -> None:
    made = token(expires_at=NOW + timedelta(minutes=1))
    late = NOW + timedelta(minutes=2)
    assert check_token(SECRET, "L1", "unseal", "TRIP-7", made, late, 0).result == "token_expired"


def test_bad_arguments_are_refused_when_making() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        token(expires_at=datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="set_area token needs its area"):
        token("set_area", area=None)
    with pytest.raises(ValueError, match="set_area token needs its area"):
        token("unseal", area=AREA)
    with pytest.raises(ValueError, match="counter"):
        token(counter=0)


# --- report MACs -------------------------------------------------------------------------

states = st.sampled_from(["sealed", "unsealed", "open", "unknown"])
events = st.sampled_from(["status", "sealed", "shackle_opened", "rope_cut", "shell_tampered"])
batteries = st.none() | st.integers(0, 100)
times = st.integers(0, 2**32 - 1).map(lambda s: datetime.fromtimestamp(s, UTC))


@given(
    lock_id=ids,
    counter=st.integers(0, 2**32 - 1),
    at=times,
    state=states,
    event=events,
    battery=batteries,
)
def test_report_mac_round_trip(
    lock_id: str, counter: int, at: datetime, state: str, event: str, battery: int | None
) -> None:
    mac = report_mac(SECRET, lock_id, counter, at, state, event, battery)
    assert len(mac) == MAC_BYTES
    assert check_report_mac(SECRET, mac, lock_id, counter, at, state, event, battery)
    other = b"other-secret-000"
    assert not check_report_mac(other, mac, lock_id, counter, at, state, event, battery)


@given(
    counter=st.integers(0, 2**32 - 2),
    state=states,
    event=events,
    other_state=states,
    other_event=events,
    battery=batteries,
    other_battery=batteries,
)
def test_report_mac_covers_counter_time_state_event_and_battery(
    counter: int,
    state: str,
    event: str,
    other_state: str,
    other_event: str,
    battery: int | None,
    other_battery: int | None,
) -> None:
    mac = report_mac(SECRET, "L1", counter, NOW, state, event, battery)

    def ok(**over: object) -> bool:
        args: dict[str, object] = {
            "lock_id": "L1",
            "counter": counter,
            "time": NOW,
            "state": state,
            "event": event,
            "battery_pct": battery,
        }
        args.update(over)
        return check_report_mac(SECRET, mac, **args)  # type: ignore[arg-type]

    assert ok()
    assert not ok(lock_id="L2")
    assert not ok(counter=counter + 1)
    assert not ok(time=NOW + timedelta(seconds=1))
    assume(other_state != state or other_event != event or other_battery != battery)
    assert not ok(state=other_state, event=other_event, battery_pct=other_battery)


def test_report_mac_refuses_what_the_wire_cannot_carry() -> None:
    with pytest.raises(ValueError, match="not of the lock profile"):
        report_mac(SECRET, "L1", 1, NOW, "sealed", "exploded", 50)
    with pytest.raises(ValueError, match="DWORD"):
        report_mac(SECRET, "L1", 2**32, NOW, "sealed", "status", 50)
    with pytest.raises(ValueError, match="battery"):
        report_mac(SECRET, "L1", 1, NOW, "sealed", "status", 101)
    # the check never raises: a value the lock cannot have sent is simply not its MAC
    assert not check_report_mac(SECRET, bytes(16), "L1", 2**32, NOW, "sealed", "status", 50)

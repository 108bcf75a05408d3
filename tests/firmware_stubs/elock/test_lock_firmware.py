"""The lock's state machine without I/O."""

from __future__ import annotations

import itertools
from collections import OrderedDict
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devices.elock import profile
from devices.elock.authorisation import TokenAction, make_token
from devices.elock.block import Area, BondWatchBlock
from devices.elock.report_mac import check_report_mac
from firmware_stubs.elock.lock import ANSWER_CACHE, LockFirmware

NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
SITE = Area(22.5, 113.9, 300)


_COUNTERS = itertools.count(1)


def _lock() -> LockFirmware:
    return LockFirmware("L1", b"k", lat=22.5, lon=113.9, area=SITE)


def _cmd(
    name: profile.CommandName,
    trip: str | None = "T1",
    token: bytes | None = None,
    area: Area | None = None,
    lock_id: str = "L1",
) -> BondWatchBlock:
    if token is None and name == "seal" and trip:
        token = _token(trip, action="seal")  # the authorised seal, as the server gives it
    return BondWatchBlock(
        lock_id=lock_id, command=profile.COMMAND_CODES[name], trip_id=trip, token=token, area=area
    )


def _token(
    trip: str = "T1",
    secret: bytes = b"k",
    action: TokenAction = "unseal",
    area: Area | None = None,
    counter: int | None = None,
) -> bytes:
    """A fresh token (the next counter), as the server makes them."""
    counter = next(_COUNTERS) if counter is None else counter
    return make_token(secret, "L1", action, trip, counter, NOW + timedelta(minutes=5), area)


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
    assert lock.block("status", NOW).wrong_passwords == 2
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
    seal = _cmd("seal")
    first, events = lock.command(9, seal, NOW)
    again, events_again = lock.command(9, seal, NOW)
    assert again == first
    assert events == ["sealed"]
    assert events_again == []


def test_another_command_under_a_cached_serial_is_carried_out() -> None:
    """A restarted gateway reusing the serial of the handheld's seal: its unseal is
    carried out and answered as an unseal, not with the seal's cached `done`."""
    lock = _lock()
    sealed, _ = lock.command(0, _cmd("seal"), NOW)
    answer, events = lock.command(0, _cmd("unseal", token=_token()), NOW)
    assert answer.command_result is not None and sealed.command_result is not None
    assert answer.command_result.command == profile.COMMAND_CODES["unseal"]
    assert (_result(answer), events, lock.state) == (("done", ""), ["unsealed"], "unsealed")
    # the same serial and body under another message id is another command: carried out
    seal = _cmd("seal")
    assert _result(lock.command(5, seal, NOW)[0]) == ("done", "")
    assert _result(lock.command(5, seal, NOW, msg_id=0x8300)[0]) == ("refused", "token_reused")


#: One step of a gateway's session: a new command (kind, serial) or a repeat of the
#: n-th command sent before (same serial and body).
Step = tuple[str, profile.CommandName, int]
KINDS: list[profile.CommandName] = ["seal", "unseal", "query"]
steps = st.lists(
    st.tuples(
        st.just("new"),
        st.sampled_from(KINDS),
        # a few serials, so that commands share them; sometimes more than the cache holds
        st.integers(0, 3) | st.integers(0, ANSWER_CACHE + 8),
    )
    | st.tuples(st.just("repeat"), st.just("query"), st.integers(0, 200)),
    min_size=1,
    max_size=40,
)


@settings(max_examples=300)
@given(steps)
def test_only_a_repeat_of_the_same_command_gets_the_cached_answer(session: list[Step]) -> None:
    """Whatever a gateway sends under whatever serial: a command the lock has not answered
    under that serial is carried out and answered as itself (its serial and command code);
    a repeat of a cached command gets the very same answer and changes nothing."""
    lock = _lock()
    sent: list[tuple[int, BondWatchBlock]] = []
    #: The lock's cache as the profile describes it: serial → (command, answer), LRU.
    model: OrderedDict[int, tuple[BondWatchBlock, BondWatchBlock]] = OrderedDict()
    for what, kind, number in session:
        if what == "repeat":
            if not sent:
                continue
            serial, block = sent[number % len(sent)]
        else:
            serial, block = number, _cmd(kind, token=_token() if kind == "unseal" else None)
        before = (lock.state, lock.trip_id, lock.token_counter, lock.wrong_passwords)
        answer, events = lock.command(serial, block, NOW)
        cached = model.get(serial)
        if cached is not None and cached[0] == block:
            assert answer == cached[1]
            assert events == []
            assert (lock.state, lock.trip_id, lock.token_counter, lock.wrong_passwords) == before
        else:
            assert answer.command_result is not None
            assert answer.command_result.reply_serial == serial
            assert answer.command_result.command == block.command
            assert answer.state_name == lock.state
            model[serial] = (block, answer)
            model.move_to_end(serial)
            while len(model) > ANSWER_CACHE:
                model.popitem(last=False)
        sent.append((serial, block))


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
    for_far = _token(action="set_area", area=far)
    assert _result(lock.command(3, _cmd("set_area", token=for_far, area=far), NOW)[0]) == (
        "done",
        "",
    )
    assert lock.area == far


def test_seal_needs_its_own_token() -> None:
    """A gateway cannot seal (or seal again after an opening, to hide it) on its own."""
    lock = _lock()
    refused = [
        lock.command(1, _cmd("seal", token=b""), NOW)[0],
        lock.command(2, _cmd("seal", token=_token("T1")), NOW)[0],  # an unseal token
        lock.command(3, _cmd("seal", token=_token("T2", action="seal")), NOW)[0],  # other trip
    ]
    assert [_result(a) for a in refused] == [("refused", "bad_token")] * 3
    assert lock.state == "unsealed"
    assert _result(lock.command(4, _cmd("seal"), NOW)[0]) == ("done", "")


def test_tokens_are_single_use() -> None:
    lock = _lock()
    lock.command(1, _cmd("seal"), NOW)
    lock.lat = 22.51  # outside: the unseal is refused, but the token is used up all the same
    token = _token()
    assert _result(lock.command(2, _cmd("unseal", token=token), NOW)[0]) == (
        "refused",
        "outside_area",
    )
    lock.lat = 22.5
    # The same token again (a replay by the gateway; a new serial, so no cached answer).
    assert _result(lock.command(3, _cmd("unseal", token=token), NOW)[0]) == (
        "refused",
        "token_reused",
    )
    assert lock.state == "sealed"
    assert lock.wrong_passwords == 0  # authentic, not a guess
    # a token made before the used one is dead too; a newer one works
    older = _token(counter=lock.token_counter - 1)
    assert _result(lock.command(4, _cmd("unseal", token=older), NOW)[0])[1] == "token_reused"
    assert _result(lock.command(5, _cmd("unseal", token=_token()), NOW)[0]) == ("done", "")


def test_area_token_is_bound_to_its_area() -> None:
    lock = _lock()
    lock.command(1, _cmd("seal"), NOW)
    wanted, sneaked = Area(23.0, 114.0, 100), Area(23.0, 114.0, 100_000)
    token = _token(action="set_area", area=wanted)
    answer, events = lock.command(2, _cmd("set_area", token=token, area=sneaked), NOW)
    assert (_result(answer), events) == (("refused", "bad_token"), ["wrong_password"])
    assert lock.area == SITE


def test_reports_are_counted_and_signed() -> None:
    lock = _lock()
    first, second = lock.block("status", NOW), lock.block("shell_tampered", NOW)
    assert (first.report_counter, second.report_counter) == (1, 2)
    for block, event in ((first, "status"), (second, "shell_tampered")):
        assert block.report_mac is not None and block.report_counter is not None
        assert check_report_mac(
            b"k", block.report_mac, "L1", block.report_counter, NOW, "unsealed", event, 100
        )
    assert not check_report_mac(
        b"k", second.report_mac or b"", "L1", 2, NOW, "unsealed", "status", 100
    )


def test_counters_survive_a_restart() -> None:
    lock = _lock()
    lock.block("status", NOW)
    lock.command(1, _cmd("seal"), NOW)
    saved = lock.persisted()
    again = _lock()
    again.restore(saved)
    assert (again.report_counter, again.token_counter) == (1, lock.token_counter)
    assert again.block("status", NOW).report_counter == 2
    with pytest.raises(ValueError, match="token_counter"):
        again.restore({"token_counter": -1})

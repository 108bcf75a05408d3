"""The judge worker's inbox (`server.judge_inbox`) over a real pipe: batches that came
while the judge was busy are one step, in the order sent; never across a gap in receive
times that a silence could hide in; never more than its limit; nothing once the parent
is gone."""

from __future__ import annotations

import multiprocessing
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection

import pytest

from server.child import ParentPipe
from server.judge_inbox import Inbox
from server.pipe_events import Batch, Wire

T0 = datetime(2026, 12, 8, 8, 0, tzinfo=UTC)


def batch(first: int, count: int, at_s: float = 0.0) -> list[Wire]:
    at = T0 + timedelta(seconds=at_s)
    return [("position", f'{{"seq": {n}}}', at) for n in range(first, first + count)]


@pytest.fixture
def ends() -> Iterator[tuple[Connection, Connection]]:
    parent, child = multiprocessing.Pipe()
    yield parent, child
    parent.close()
    child.close()


@pytest.fixture
def pipe(ends: tuple[Connection, Connection]) -> tuple[Connection, ParentPipe]:
    """(the parent's end, as `ChildProcess` sends on it; the child's end)."""
    return ends[0], ParentPipe(ends[1])


def filled(inbox: Inbox, held: int) -> None:
    """Until the inbox holds `held` messages (the reader thread is running)."""
    deadline = time.monotonic() + 10
    while inbox.held < held:
        assert time.monotonic() < deadline, f"the inbox holds {inbox.held}, not {held}"
        time.sleep(0.01)


def seqs(wire: list[Wire] | None) -> list[int]:
    assert wire is not None
    return [int(raw.split(": ")[1].rstrip("}")) for _, raw, _ in wire]


def test_batches_waiting_are_one_step_in_the_order_sent(
    pipe: tuple[Connection, ParentPipe],
) -> None:
    parent, child = pipe
    inbox = Inbox(child, timedelta(seconds=60))
    threading.Thread(target=inbox.fill, daemon=True).start()
    for k in range(4):
        parent.send(Batch(batch(k * 10, 10, at_s=k)))
    filled(inbox, 40)
    assert seqs(inbox.take()) == list(range(40))
    assert inbox.merged == 3


def test_batches_further_apart_than_the_span_are_steps_of_their_own(
    pipe: tuple[Connection, ParentPipe],
) -> None:
    """At 0 s, 20 s and 45 s with a span of 30 s: the first two together, the third alone
    (45 s after the first: a silence of 30 s could hide between them)."""
    parent, child = pipe
    inbox = Inbox(child, timedelta(seconds=30))
    threading.Thread(target=inbox.fill, daemon=True).start()
    for first, at_s in ((0, 0.0), (5, 20.0), (10, 45.0)):
        parent.send(Batch(batch(first, 5, at_s)))
    filled(inbox, 15)
    assert seqs(inbox.take()) == list(range(10))
    assert seqs(inbox.take()) == list(range(10, 15))


def test_a_step_and_the_messages_held_keep_within_the_limit(
    pipe: tuple[Connection, ParentPipe],
) -> None:
    """With a limit of 25 and batches of 10, the reader stops at 30 held (it waits for the
    judge, so the pipe fills and the sender waits too), and a step takes 20."""
    parent, child = pipe
    inbox = Inbox(child, timedelta(seconds=60), merge_max=25)
    threading.Thread(target=inbox.fill, daemon=True).start()

    def send_six() -> None:
        for k in range(6):
            parent.send(Batch(batch(k * 10, 10)))

    sender = threading.Thread(target=send_six, daemon=True)
    sender.start()
    filled(inbox, 30)
    time.sleep(0.2)
    assert inbox.held == 30
    taken: list[int] = []
    while len(taken) < 60:
        step = seqs(inbox.take())
        assert len(step) <= 25
        taken += step
    assert taken == list(range(60))
    sender.join(5)
    assert not sender.is_alive()


def test_nothing_once_the_parent_is_gone_and_all_is_taken(
    ends: tuple[Connection, Connection], pipe: tuple[Connection, ParentPipe]
) -> None:
    parent, child = pipe
    inbox = Inbox(child, timedelta(seconds=60))
    parent.send(Batch(batch(0, 3)))
    ends[0].close()
    inbox.fill()  # returns once the pipe is closed
    assert seqs(inbox.take()) == [0, 1, 2]
    assert inbox.take() is None


def test_receive_times_that_cannot_be_compared_are_never_joined(
    pipe: tuple[Connection, ParentPipe],
) -> None:
    """A naive time beside aware ones (a bug upstream) must not stop the judge's thread:
    the batches are judged one by one."""
    parent, child = pipe
    inbox = Inbox(child, timedelta(seconds=60))
    threading.Thread(target=inbox.fill, daemon=True).start()
    naive = [("position", '{"seq": 5}', T0.replace(tzinfo=None))]
    parent.send(Batch(batch(0, 5)))
    parent.send(Batch(naive))
    filled(inbox, 6)
    assert seqs(inbox.take()) == list(range(5))
    assert seqs(inbox.take()) == [5]

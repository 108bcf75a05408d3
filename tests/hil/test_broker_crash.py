"""Broker crashes (SIGKILL) and gateway power cuts around the server's acknowledgement
(issue 23), every part real: Mosquitto with the shipped settings (autosave every 10 s),
the server and the truck agent as subprocesses, the GNSS receiver as a firmware stub.

Mosquitto writes its queues to disk only at autosave and shutdown, so a SIGKILL loses
what it took since the last autosave. The agent keeps every message until the server
acknowledges it and sends again what is not acknowledged `ack_timeout_s` after a
reconnect. The issue asks for "a minute" of sending with the server away; the GNSS stub
runs at 20 fixes per wall second, so 20 s give some 400 positions, more than one
autosave period of the broker — the same property, in a third of the time.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from devtools.broker import MosquittoBroker
from devtools.processes import Child
from tests.hil.truck_rig import TruckRig, assert_nothing_lost, truck_on_own_bench

NODE = "TRK-CRASH-1"

pytestmark = [pytest.mark.hil, pytest.mark.timeout(180)]

#: Wall seconds the agent sends while the server is away (see the module's docstring).
AWAY_S = 20.0
#: A short acknowledgement timeout, so that the resend is seen within the test.
OUTBOX = {"ack_timeout_s": 2.0}


@pytest.fixture
def rig(tmp_path: Path, own_broker: MosquittoBroker) -> Iterator[TruckRig]:
    """A bench on a broker of its own (the test kills it) with one truck and a server."""
    with truck_on_own_bench(tmp_path, own_broker, NODE) as running:
        yield running


def server_child(rig: TruckRig) -> Child:
    return next(c for c in rig.bench.children if c.name == "server")


def restart_server(rig: TruckRig) -> None:
    server_child(rig).start(ready="bondwatch-server")
    base = rig.bench.base
    rig.bench.wait_for(lambda: httpx.get(f"{base}/healthz").json()["broker_connected"], 30)


def wait_autosave(broker: MosquittoBroker, after: float) -> None:
    """Wait until the broker wrote its state after `after` (so the server's session is in it)."""
    saved = broker.workdir / "data" / "mosquitto.db"
    deadline = time.monotonic() + 15
    while not (saved.exists() and saved.stat().st_mtime > after):
        assert time.monotonic() < deadline, "the broker saved nothing"
        time.sleep(0.2)


def sent_unacknowledged(rig: TruckRig) -> int:
    with rig.outbox() as box:
        return box.stats().sent


def assert_positions_once_in_order(rig: TruckRig) -> None:
    positions = rig.stored("position")
    fix_times = [row.ts for row in positions]
    assert len(set(fix_times)) == len(fix_times), "a fix was stored twice under two seqs"
    assert fix_times == sorted(fix_times), "positions in seq order are not in fix-time order"


@pytest.mark.slow
def test_broker_sigkilled_while_the_server_is_away_loses_nothing(rig: TruckRig) -> None:
    started = time.time()
    rig.start_gnss(rate=10, time_scale=2)
    rig.write_config(outbox=OUTBOX)
    rig.start_agent()
    rig.wait_online()
    wait_autosave(rig.bench.broker, started)  # the server's persistent session is saved

    server_child(rig).stop()
    time.sleep(AWAY_S)
    held = sent_unacknowledged(rig)
    # Taken by the broker, kept by the agent: without the acknowledgement these would
    # have left the outbox, and the crash below would have lost them.
    assert held >= 0.8 * AWAY_S * rig.fixes_per_s
    rig.bench.broker.kill()
    rig.bench.broker.start()
    time.sleep(2 * OUTBOX["ack_timeout_s"] + 2)  # the agent reconnects and sends again
    restart_server(rig)

    time.sleep(2)
    rig.stop_devices()
    last_seq, reserved = rig.wait_drained(60)
    stored = assert_nothing_lost(rig, last_seq, reserved)
    assert stored == sorted(set(stored))  # each seq once
    assert_positions_once_in_order(rig)


@pytest.mark.slow
def test_broker_sigkilled_while_the_server_is_busy_loses_nothing(rig: TruckRig) -> None:
    rig.start_gnss(rate=10, time_scale=2)
    rig.write_config(outbox=OUTBOX)
    rig.start_agent()
    rig.wait_online()
    rig.bench.wait_for(lambda: len(rig.stored("position")) >= 100, 30)
    rig.bench.broker.kill()  # messages in flight to and from the server
    time.sleep(1)
    rig.bench.broker.start()
    rig.bench.wait_for(
        lambda: len(rig.stored("position")) >= 100 + 5 * rig.fixes_per_s, 40
    )  # both reconnected, the stream goes on
    rig.stop_devices()
    last_seq, reserved = rig.wait_drained(60)
    assert_nothing_lost(rig, last_seq, reserved)
    assert_positions_once_in_order(rig)


@pytest.mark.slow
def test_agent_killed_between_the_pubacks_and_the_servers_ack_resends(rig: TruckRig) -> None:
    started = time.time()
    rig.start_gnss(rate=10, time_scale=2)
    rig.write_config(outbox=OUTBOX)
    rig.start_agent()
    rig.wait_online()
    wait_autosave(rig.bench.broker, started)
    server_child(rig).stop()  # nothing is acknowledged from now on
    rig.bench.wait_for(lambda: sent_unacknowledged(rig) >= 100, 20)
    rig.kill_agent()  # taken by the broker, not yet acknowledged: the power goes
    with rig.outbox() as box:
        snapshot = {m.seq: m.payload for m in box.pending(1_000_000) if m.sent is not None}
    assert len(snapshot) >= 100

    rig.start_agent()  # sends the unacknowledged again after ack_timeout_s
    time.sleep(2 * OUTBOX["ack_timeout_s"] + 2)
    restart_server(rig)  # receives both copies: stores each (node, seq) once
    time.sleep(2)
    rig.stop_devices()
    last_seq, reserved = rig.wait_drained(60)
    assert_nothing_lost(rig, last_seq, reserved)
    by_seq = {row.seq: row.payload for row in rig.stored()}
    for seq, raw in snapshot.items():
        sent = json.loads(raw)
        sent.pop("replayed", None)
        got = dict(by_seq[seq])
        got.pop("replayed", None)
        assert got == sent, f"seq {seq} changed on the way"
    assert_positions_once_in_order(rig)
    assert rig.agent_starts == 2

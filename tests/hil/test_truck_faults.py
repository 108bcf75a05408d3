"""Fault scenarios of the truck gateway, every part real (issue 6, parts 6 and 7).

Mosquitto on a free port (stopped and restarted by the test), the server and the
agent as subprocesses, the GNSS receiver and the e-lock as firmware stubs on ptys
(or the real devices named by `BONDWATCH_HIL_ENV`, see docs/hil.md). The stubs'
`--time-scale` turns simulated minutes into seconds of wall time.
"""

from __future__ import annotations

import base64
import itertools
import json
import random
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from contract.ids import utc_now
from contract.signing import generate_private_key, private_key_to_pem
from devices.elock.authorisation import make_token
from devtools.broker import MosquittoBroker
from tests.hil.hardware import needs_lock, stubs_only
from tests.hil.truck_rig import (
    Stored,
    TruckRig,
    assert_nothing_lost,
    control,
    route_end,
    truck_on_own_bench,
)

pytestmark = pytest.mark.timeout(150)

NODE = "TRK-FAULT-1"
TRIP = "HIL-F-0001"


@pytest.fixture
def rig(tmp_path: Path, own_broker: MosquittoBroker) -> Iterator[TruckRig]:
    """A bench on a broker of its own (the test may stop it) with one truck and a server."""
    with truck_on_own_bench(tmp_path, own_broker, NODE) as running:
        yield running


def declare(rig: TruckRig) -> None:
    declaration = {
        "declaration_id": TRIP,
        "enterprise": {"code": "4401960001", "name": "示范供应链", "credit": "advanced"},
        "vehicle_id": rig.node_id,
        "plate": "粤A·F4U17",
        "lock_ids": [rig.lock_id],
        "containers": ["CSQU3054383"],
        "origin_gate": "G-HUANGPU-1",
        "destination_gate": "G-BAIYUN-1",
        "route_id": "R-HP-BY",
        "time_limit_min": 600,
    }
    response = rig.bench.api("POST", "/declarations", json=declaration)
    assert response.status_code == 201, response.text


# ---- broker outage -----------------------------------------------------------------------


#: The broker is down this long mid-trip (wall seconds; issue 6: "stopped for minutes").
OUTAGE_S = 120.0
#: The GNSS stub for the outage: 10 Hz at twice real time, 20 fixes per wall second,
#: so the two minutes leave a backlog of some 2,400 positions (a real 1 Hz receiver:
#: 120) and 4 simulated minutes of track (4 km at 60 km/h, well inside the route).
OUTAGE_RATE_HZ, OUTAGE_TIME_SCALE = 10, 2
#: The e-lock stub reports its status twice a second: some 240 lock events wait.
OUTAGE_LOCK_INTERVAL_S = 0.5


def lock_replayed(row: Stored) -> bool:
    return bool(row.payload.get("replayed", False))


@pytest.mark.hil
@pytest.mark.slow
@pytest.mark.timeout(150 + OUTAGE_S)
@needs_lock()
def test_broker_outage_of_minutes_loses_nothing_and_flags_the_replay(rig: TruckRig) -> None:
    declare(rig)
    rig.start_gnss(rate=OUTAGE_RATE_HZ, time_scale=OUTAGE_TIME_SCALE)
    sim_per_wall = OUTAGE_TIME_SCALE if rig.real is None else 1.0
    rig.start_lock(interval_s=OUTAGE_LOCK_INTERVAL_S)
    rig.write_config(with_lock=True)
    rig.start_agent()
    rig.bench.wait_for(lambda: len(rig.stored("position")) >= 60, 30)
    rig.bench.wait_for(lambda: len(rig.stored("lock")) >= 2, 15)

    rig.bench.broker.stop()
    assert (rig.bench.broker.workdir / "data" / "mosquitto.db").exists(), "broker saved nothing"
    time.sleep(OUTAGE_S)
    assert rig.agent is not None and rig.agent.running, "the agent died during the outage"
    during = rig.pending()  # what waited through the gap
    waited_positions = [m.seq for m in during if m.topic.endswith("/position")]
    waited_locks = [m.seq for m in during if m.topic.endswith("/lock")]
    assert len(waited_positions) >= 0.9 * OUTAGE_S * rig.fixes_per_s
    if rig.real is None:
        assert len(waited_locks) >= 0.8 * OUTAGE_S / OUTAGE_LOCK_INTERVAL_S
    rig.bench.broker.start()  # the same port, its persisted sessions

    waiting = {m.seq for m in during}
    rig.bench.wait_for(lambda: waiting <= set(rig.bench.stored_seqs(rig.node_id)), 90)
    # The backlog is through: what is enqueued from now on is live.
    rig.bench.wait_for(lambda: len(rig.pending()) < 50, 30)
    with rig.outbox() as box:
        live_from = box.last_seq()
    time.sleep(3)  # live traffic after the replay
    rig.stop_devices()
    last_seq, reserved = rig.wait_drained(30)
    assert_nothing_lost(rig, last_seq, reserved)

    # Each waiting message arrived as the agent stored it (same content, same seq).
    by_seq = {row.seq: row for row in rig.stored()}
    for item in during:
        sent = json.loads(item.payload)
        sent.pop("replayed", None)
        got = dict(by_seq[item.seq].payload)
        got.pop("replayed", None)
        assert got == sent, f"seq {item.seq} changed on the way"

    # Once: no position came back as a new event (a new seq for the same fix).
    positions = rig.stored("position")
    fix_times = [row.ts for row in positions]
    assert len(set(fix_times)) == len(fix_times), "a fix was stored twice under two seqs"

    # In order: the backlog reached the server in seq order; positions in seq order are
    # in fix-time order and lock events in device-time order, across the outage.
    arrival = [by_seq[s].received_at for s in sorted(waiting)]
    assert arrival == sorted(arrival)
    assert fix_times == sorted(fix_times)
    locks = rig.stored("lock")
    lock_times = [row.ts for row in locks]
    assert lock_times == sorted(lock_times)
    assert len(locks) >= len(waited_locks) + 2

    # Flagged `replayed` where it waited through the gap, and only there.
    flags = rig.replayed_flags()
    assert all(flags[s] for s in waited_positions)
    before = [s for s in flags if s < min(waiting)]
    after = [s for s in flags if s > live_from]
    assert before and not any(flags[s] for s in before)
    assert len(after) >= rig.fixes_per_s and not any(flags[s] for s in after)
    assert all(lock_replayed(by_seq[s]) for s in waited_locks)
    assert not any(lock_replayed(r) for r in locks if r.seq < min(waiting) or r.seq > live_from)

    # The outbox (256 MiB) was never near its bound: no outbox health was said.
    assert not [r for r in rig.stored("health") if r.payload["device"] == "outbox"]

    # The trip track has no hole: every fix across the outage, none twice.
    trip = rig.bench.api("GET", f"/trips/{TRIP}", params={"track": 1}).json()
    track = trip["track"]
    times = [datetime.fromisoformat(p["ts"].replace("Z", "+00:00")) for p in track]
    assert [p["seq"] for p in track] == sorted(p["seq"] for p in track)
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(times)]
    assert min(gaps) > 0, "two track points share a fix time"
    assert max(gaps) <= 2.0, f"hole of {max(gaps)} s in the track"
    assert (times[-1] - times[0]).total_seconds() >= OUTAGE_S * sim_per_wall


# ---- power cuts of the gateway -----------------------------------------------------------


@pytest.mark.hil
@pytest.mark.slow
def test_agent_killed_again_and_again_loses_and_repeats_nothing(rig: TruckRig) -> None:
    rng = random.Random(20261123)
    rig.start_gnss(rate=10, time_scale=2)  # 20 fixes per wall second
    rig.write_config()
    snapshots: list[dict[int, bytes]] = []
    last_seqs: list[int] = []
    for _ in range(8):
        rig.start_agent()
        time.sleep(rng.uniform(0.8, 3.5))  # anywhere from start-up to a busy stream
        rig.kill_agent()
        with rig.outbox() as box:
            last_seqs.append(box.last_seq())
            snapshots.append({m.seq: m.payload for m in box.pending(1_000_000)})
    rig.start_agent()
    rig.wait_online()
    time.sleep(2)
    rig.stop_devices()
    last_seq, reserved = rig.wait_drained(40)

    # The counter never goes back across power cuts (a life cut during start-up may
    # not have handed out any), and most lives made progress.
    assert last_seqs == sorted(last_seqs) and len(set(last_seqs)) >= 5
    assert last_seq > last_seqs[-1]
    assert_nothing_lost(rig, last_seq, reserved)

    # Whatever was committed when the power went reached the server unchanged: a seq
    # reused for another message would show here as a different stored payload.
    by_seq = {row.seq: row.payload for row in rig.stored()}
    checked = 0
    for snapshot in snapshots:
        for seq, raw in snapshot.items():
            sent = json.loads(raw)
            sent.pop("replayed", None)
            got = dict(by_seq[seq])
            got.pop("replayed", None)
            assert got == sent, f"seq {seq}: stored {got} but the outbox held {sent}"
            checked += 1
    assert checked > 0, "no kill caught a message waiting in the outbox"

    # Positions in seq order are in fix-time order: no replay went back in time.
    positions = rig.stored("position")
    assert len(positions) >= 5 * rig.fixes_per_s
    times = [row.ts for row in positions]
    assert times == sorted(times) and len(set(times)) == len(times)
    assert rig.agent_starts == 9


# ---- signed commands ---------------------------------------------------------------------


def sealed_rig(rig: TruckRig) -> None:
    rig.start_gnss(rate=1, time_scale=1)
    rig.start_lock(interval_s=2.0)
    assert rig.seal(TRIP) == "done sealed"
    rig.write_config(with_lock=True, reporting={"interval_s": 10})
    rig.start_agent()
    rig.bench.wait_for(lambda: len(rig.stored("lock")) > 0, 30)


def query_state(rig: TruckRig) -> str:
    command = rig.command("query", TRIP)
    rig.send(rig.signed(command))
    result = rig.result_of(command.command_id)
    assert result["result"] == "done", result
    return str(result["detail"])


def lock_events(rig: TruckRig) -> list[str]:
    return [str(row.payload["event"]) for row in rig.stored("lock")]


@pytest.mark.hil
@needs_lock()
def test_forged_tampered_expired_and_replayed_commands_move_nothing(
    rig: TruckRig, tmp_path: Path
) -> None:
    sealed_rig(rig)
    token = base64.b64encode(rig.token("unseal", TRIP)).decode()
    wrong_key = tmp_path / "attacker.pem"
    wrong_key.write_bytes(private_key_to_pem(generate_private_key()))

    # Forged: a good unseal command with a good lock token, signed by someone else.
    forged = rig.command("unseal", TRIP, lock_token=token)
    rig.send(rig.signed(forged, key_file=wrong_key))

    # Tampered: signed by the server for another trip, the trip id then changed.
    tampered = rig.command("unseal", "HIL-OTHER", lock_token=token)
    body = json.loads(rig.signed(tampered))
    body["trip_id"] = TRIP
    rig.send(json.dumps(body).encode())

    # Expired: properly signed, but its time is over.
    old = utc_now() - timedelta(minutes=10)
    expired = rig.command(
        "unseal", TRIP, lock_token=token, issued_at=old, expires_at=old + timedelta(minutes=2)
    )
    rig.send(rig.signed(expired))

    # Signed by the server but without the lock's own token: the gateway cannot open.
    no_token = rig.command("unseal", TRIP)
    rig.send(rig.signed(no_token))

    # A token the server did not make (the gateway or an attacker guessing).
    expires = utc_now() + timedelta(minutes=5)
    guessed = make_token(b"not-the-secret", rig.lock_id, "unseal", TRIP, 1 << 60, expires)
    bad_token = rig.command("unseal", TRIP, lock_token=base64.b64encode(guessed).decode())
    rig.send(rig.signed(bad_token))

    # Replayed: a valid command seen once is refused the second time.
    first = rig.command("query", TRIP)
    raw_first = rig.signed(first)
    rig.send(raw_first)
    assert rig.result_of(first.command_id)["result"] == "done"
    results_before = len(rig.stored("command/result"))
    rig.send(raw_first)

    assert rig.result_of(forged.command_id)["result"] == "bad_signature"
    assert rig.result_of(tampered.command_id)["result"] == "bad_signature"
    assert rig.result_of(expired.command_id)["result"] == "expired"
    refused = rig.result_of(no_token.command_id)
    assert refused["result"] == "refused" and "lock_token" in refused["detail"]
    guessed_result = rig.result_of(bad_token.command_id)
    assert guessed_result["result"] == "refused"
    assert guessed_result["detail"] == "bad_token"

    def replay_answered() -> bool:
        rows = [r.payload for r in rig.stored("command/result")]
        return len(rows) > results_before and [
            p["result"] for p in rows if p["command_id"] == first.command_id
        ] == ["done", "refused"]

    rig.bench.wait_for(replay_answered, 20)
    replay = [
        p
        for r in rig.stored("command/result")
        if (p := r.payload)["command_id"] == first.command_id
    ]
    assert "replay" in replay[1]["detail"]

    # Nothing moved: the lock is sealed for the trip and never reported unsealed.
    assert query_state(rig) == f"lock {rig.lock_id} sealed"
    if rig.real is None:
        state = rig.lock_state()
        assert state["state"] == "sealed" and state["trip_id"] == TRIP
        assert state["wrong_passwords"] == 1  # the guessed token, and only it
    events = lock_events(rig)
    assert "unsealed" not in events and "wrong_password" in events


@pytest.mark.hil
@stubs_only("the lock stub's `position` control moves the lock out of its area")
def test_unseal_outside_the_area_is_refused_and_inside_it_is_done(rig: TruckRig) -> None:
    sealed_rig(rig)
    lat, lon = route_end()

    def unseal() -> dict[str, object]:
        token = rig.token("unseal", TRIP)  # a fresh one each time: a token works once
        command = rig.command("unseal", TRIP, lock_token=base64.b64encode(token).decode())
        rig.send(rig.signed(command))
        return rig.result_of(command.command_id)

    # 2 km north of the destination site: the lock refuses, fails closed.
    assert control(rig.lock_control, f"position {lat + 0.018} {lon}").startswith("OK ")
    outside = unseal()
    assert outside == {**outside, "result": "refused", "detail": "outside_area"}
    assert rig.lock_state()["state"] == "sealed"
    rig.bench.wait_for(lambda: "unseal_refused_outside_area" in lock_events(rig), 15)
    assert "unsealed" not in lock_events(rig)

    # Back inside the site: the same kind of command, with a fresh nonce and token.
    assert control(rig.lock_control, f"position {lat} {lon}").startswith("OK ")
    inside = unseal()
    assert inside["result"] == "done", inside
    rig.bench.wait_for(lambda: "unsealed" in lock_events(rig), 15)
    assert rig.lock_state()["state"] == "unsealed"
    unsealed = next(r for r in rig.stored("lock") if r.payload["event"] == "unsealed")
    assert unsealed.payload["state"] == "unsealed"
    assert unsealed.payload["lock_id"] == rig.lock_id


# ---- a serial device unplugged -----------------------------------------------------------


@pytest.mark.hil
@stubs_only("the GNSS stub's `unplug` control pulls the cable")
def test_gnss_unplugged_and_replugged_reports_down_then_ok(rig: TruckRig) -> None:
    rig.start_gnss(rate=1, time_scale=5, link=True)
    rig.write_config()
    rig.start_agent()
    rig.bench.wait_for(lambda: len(rig.stored("position")) >= 10, 30)

    unplugged_at = datetime.now(UTC)
    answer = control(rig.gnss_control, "unplug 20")  # 20 simulated s = 4 s
    assert answer.startswith("OK"), answer

    def statuses() -> list[tuple[int, str]]:
        return [
            (row.seq, str(row.payload["status"]))
            for row in rig.stored("health")
            if row.payload["device"] == "gnss"
        ]

    def recovered() -> bool:
        seen = statuses()
        downs = [seq for seq, status in seen if status == "down"]
        return bool(downs) and any(s == "ok" and seq > downs[0] for seq, s in seen)

    rig.bench.wait_for(recovered, 30)
    seen = statuses()
    down_seq = next(seq for seq, status in seen if status == "down")
    ok_seq = next(seq for seq, status in seen if status == "ok" and seq > down_seq)
    assert seen[0][1] == "ok"  # the first fix, before the unplug
    down = next(r for r in rig.stored("health") if r.seq == down_seq)
    down_at = datetime.fromisoformat(str(down.payload["ts"]).replace("Z", "+00:00"))
    assert down_at >= unplugged_at - timedelta(seconds=1)
    assert str(down.payload["detail"]).startswith(rig.gnss_port)  # names the lost port

    # Positions resume after the replug, and none was sent while the port was gone.
    rig.bench.wait_for(lambda: len([r for r in rig.stored("position") if r.seq > ok_seq]) >= 5, 20)
    between = [r for r in rig.stored("position") if down_seq < r.seq < ok_seq]
    assert not between
    after = [r for r in rig.stored("position") if r.seq > ok_seq]
    assert all(r.payload["fix"] in ("2d", "3d") for r in after)

    # The agent's log says the loss once and the return once, naming node and device,
    # although the driver retried the port several times in between (backoff 0.2-1 s).
    assert rig.agent is not None
    lines = rig.agent.log_path.read_text(errors="replace").splitlines()
    about = [i for i, line in enumerate(lines) if f"truck {NODE}: gnss" in line]
    lost = [i for i in about if f"truck {NODE}: gnss lost: " in lines[i]]
    back = [i for i in about if f"truck {NODE}: gnss returned, " in lines[i]]
    assert len(lost) == 1 and len(back) == 1, "\n".join(lines[i] for i in about)
    assert rig.gnss_port in lines[lost[0]]  # says which port went away
    assert [i for i, line in enumerate(lines) if rig.node_id in line and " lost" in line] == lost
    outage = log_time(lines[back[0]]) - log_time(lines[lost[0]])
    assert outage >= timedelta(seconds=3)  # at least three attempts to reopen the port
    assert back[0] - lost[0] <= 3, lines[lost[0] : back[0] + 1]  # nothing per retry


def log_time(line: str) -> datetime:
    """The time stamp an agent's log line starts with (`logging`'s default asctime)."""
    return datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")

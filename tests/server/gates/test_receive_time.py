"""Freshness at the gate is the server's receive time, never the device's clock: remote
unseal's last fix, and the lock state a passage is decided on."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient

from contract.ids import format_ts, utc_now
from contract.payloads import decode_edge
from server.store.database import IncomingMessage
from tests.lock_reports import signed_lock_fields
from tests.server.gates.conftest import LOCK_SECRET, GateWorld
from tests.server.gates.test_service import INSIDE_BAIYUN, ORIGIN, depart, pass_gate, register

URL = "/api/v1/trips/D-0001/unseal"


def received(world: GateWorld, channel: str, node: str, ts: datetime, at: datetime, **f: Any):
    """Store a message as the ingest would have, had it received it at `at`."""
    seq = world.seq.get(node, 0) + 1
    world.seq[node] = seq
    raw = json.dumps({"node_id": node, "seq": seq, "ts": format_ts(ts), **f})
    message = decode_edge(channel, raw)
    assert world.services.store.store_messages([IncomingMessage(channel, message, raw, at)])
    return message


def fix_inside(world: GateWorld, ts: datetime, at: datetime) -> None:
    lon, lat = INSIDE_BAIYUN
    received(world, "position", "TRK-1", ts, at, lat=lat, lon=lon, fix="3d", sats=9)


def test_unseal_takes_a_fix_received_now_though_its_device_clock_is_an_hour_behind(
    gate_world: GateWorld, gate_api: TestClient
) -> None:
    depart(gate_world)
    now = utc_now()
    fix_inside(gate_world, now - timedelta(hours=1), now)  # the device's clock runs behind
    res = gate_api.post(URL, json={"comment": "goods received"})
    assert res.status_code == 200, res.text


def test_unseal_refuses_a_fix_dated_now_but_received_long_ago(
    gate_world: GateWorld, gate_api: TestClient
) -> None:
    depart(gate_world)
    now = utc_now()
    # Received an hour ago, but dated now by a device clock an hour ahead then.
    fix_inside(gate_world, now, now - timedelta(hours=1))
    res = gate_api.post(URL, json={"comment": "goods received"})
    assert res.status_code == 409
    assert "no position of TRK-1 was received in the last 300 s" in res.text
    # A fix dated far in the future, received long ago, is no fresher.
    fix_inside(gate_world, now + timedelta(days=365), now - timedelta(hours=2))
    assert gate_api.post(URL, json={"comment": "goods received"}).status_code == 409


def test_the_gate_reads_the_lock_state_the_gateway_sent_last_not_the_latest_dated(
    gate_world: GateWorld,
) -> None:
    """A "sealed" report dated a year ahead, then the lock's "unsealed" (dated now): the
    lock is unsealed — ordered by device time, the future report would hide it for a year."""
    register(gate_world)
    now = utc_now().replace(microsecond=0)
    future = now + timedelta(days=365)

    def report(state: str, ts: datetime) -> None:
        event = "sealed" if state == "sealed" else "unsealed"
        fields = signed_lock_fields(LOCK_SECRET, "EL-1", ts, state, event, 90)
        received(gate_world, "lock", "TRK-1", ts, now - timedelta(minutes=70), **fields)

    report("sealed", future)
    report("unsealed", now - timedelta(minutes=70))
    command = pass_gate(gate_world, ORIGIN, "P-1", 60)
    assert command is not None and command.action == "hold"
    assert command.reasons == ["lock EL-1 is unsealed, not sealed"]

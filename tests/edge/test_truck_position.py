"""Receiver-declared invalid positions never reach the record as fixes.

The decoder gives an epoch with GGA quality 0 (RMC V) as no fix (`mode` 1, no
position, `receiver_valid=False`). The truck agent publishes such an epoch as
`fix: "none"` without coordinates, reports the loss and the recovery of the fix at
once, and never uses the position for lock events (`has_valid_fix` also refuses a
2D/3D `GnssFix` built with `receiver_valid=False`, whoever built it).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from pathlib import Path
from typing import Any

from contract.payloads import Position
from contract.signing import generate_private_key, public_key_to_pem
from devices.gnss.codec import GnssFix, NmeaStreamDecoder, encode_sentence
from edge.config import TruckConfig
from edge.truck.agent import TruckAgent
from edge.truck.position import has_valid_fix, position_payload, sample_of

GUESS_LAT = "2232.1234"  # the cold-start guess the receiver calls invalid
GOOD_LAT = "2232.5000"


def _epoch(hms: str, valid: bool) -> list[str]:
    if valid:
        return [
            f"GPRMC,{hms},A,{GOOD_LAT},N,11403.5678,E,12.0,90.0,231126,,,A",
            f"GPGGA,{hms},{GOOD_LAT},N,11403.5678,E,1,08,0.9,35.2,M,-3.0,M,,",
        ]
    return [
        f"GPRMC,{hms},V,{GUESS_LAT},N,11403.5678,E,12.0,90.0,231126,,,N",
        f"GPGGA,{hms},{GUESS_LAT},N,11403.5678,E,0,04,,35.2,M,-3.0,M,,",
    ]


def decoded(*validity: bool) -> list[GnssFix]:
    bodies = [b for i, v in enumerate(validity) for b in _epoch(f"0800{i:02d}", v)]
    dec = NmeaStreamDecoder()
    fixes = dec.feed("".join(encode_sentence(b) for b in bodies).encode()) + dec.flush()
    assert len(fixes) == len(validity)
    return fixes


def test_an_invalid_position_is_published_as_fix_none() -> None:
    good, guess = decoded(True, False)
    assert guess.mode == 1 and guess.lat is None  # the guess is withheld
    assert not guess.receiver_valid
    assert has_valid_fix(good) and not has_valid_fix(guess)
    # a 2D/3D fix flagged receiver-invalid (not what the decoder builds) is refused too
    flagged = dataclasses.replace(good, receiver_valid=False)
    assert not has_valid_fix(flagged)
    assert position_payload("TRK-1", flagged)["fix"] == "none"
    assert "lat" not in position_payload("TRK-1", flagged)

    payload = position_payload("TRK-1", guess)
    assert payload["fix"] == "none"
    assert not {"lat", "lon", "alt_m", "speed_kmh", "course_deg"} & set(payload)
    Position.model_validate({**payload, "seq": 1})  # a valid contract message

    valid_payload = position_payload("TRK-1", good)
    assert valid_payload["fix"] == "3d"
    assert abs(valid_payload["lat"] - (22 + 32.5 / 60)) < 1e-6

    sample = sample_of(guess, 5.0)
    assert not sample.has_fix
    assert (sample.lat, sample.lon, sample.speed_kmh) == (None, None, None)


def _agent(tmp_path: Path) -> TruckAgent:
    key = tmp_path / "server.pub"
    key.write_bytes(public_key_to_pem(generate_private_key().public_key()))
    config = TruckConfig.model_validate(
        {
            "node_id": "TRK-1",
            "outbox": {"path": tmp_path / "outbox.db", "nonce_path": tmp_path / "nonces.db"},
            "server_public_key": key,
            "gnss": {"type": "nmea", "port": "loop://"},
        }
    )
    return TruckAgent(config)


def _published(agent: TruckAgent) -> list[dict[str, Any]]:
    return [json.loads(item.payload) for item in agent.outbox.pending(100)]


def test_the_agent_reports_loss_and_recovery_and_keeps_invalid_positions_out(
    tmp_path: Path,
) -> None:
    agent = _agent(tmp_path)
    try:

        async def run() -> None:
            # valid, invalid, invalid, valid within a second: the reporting policy
            # publishes the first fix, the loss at once, not the repeat, the recovery.
            for fix in decoded(True, False, False, True):
                await agent._on_fix(fix)

        asyncio.run(run())
        sent = _published(agent)
        assert [p["fix"] for p in sent] == ["3d", "none", "3d"]
        assert "lat" not in sent[1]
        guess = 22 + 32.1234 / 60
        assert all(abs(p["lat"] - guess) > 1e-3 for p in sent if "lat" in p)
        assert all(Position.model_validate(p) for p in sent)
        # the last position the agent keeps (for lock events) is a valid one
        assert agent._last_fix is not None and agent._last_fix.receiver_valid
    finally:
        agent.outbox.close()


def test_an_invalid_epoch_after_a_valid_one_does_not_move_the_lock_position(
    tmp_path: Path,
) -> None:
    agent = _agent(tmp_path)
    try:

        async def run() -> None:
            for fix in decoded(True, False):
                await agent._on_fix(fix)

        asyncio.run(run())
        assert agent._last_fix is not None
        assert abs((agent._last_fix.lat or 0) - (22 + 32.5 / 60)) < 1e-9
    finally:
        agent.outbox.close()

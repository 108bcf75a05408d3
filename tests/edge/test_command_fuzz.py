"""Hostile commands on an agent's command topic: property tests of verify-and-decode.

Whatever arrives — arbitrary bytes, deep nesting, huge numbers, NaN, wrong types, another
node's command, an expired, future, forged or replayed one — nothing escapes the
`on_command` callback, the executor (the barrier, the e-lock's unseal) never sees it, an
answer with the precise outcome goes out whenever the payload names a command id, it is
counted by reason, and the log says so at most once per reason.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from contract import topics
from contract.ids import format_ts, utc_now
from contract.limits import DECODE_REASONS, MAX_PAYLOAD_BYTES, LimitError, check_raw
from contract.payloads import CommandResult, GateCommand, SignedCommand, TruckCommand, decode_edge
from contract.signing import generate_private_key, new_nonce, sign, signing_bytes
from contract.topics import Kind
from edge.commands import CommandHandler
from edge.nonces import SqliteNonceStore
from edge.outbox import Outbox
from tests.edge.test_commands import NODE, Recorder, gate_command

KEY = generate_private_key()
OTHER_KEY = generate_private_key()
LIMIT = MAX_PAYLOAD_BYTES["command"]
OUTCOMES = {"done", "refused", "expired", "bad_signature", "failed"}
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@contextmanager
def handler_for(
    kind: Kind = "gate", node: str = NODE
) -> Iterator[tuple[CommandHandler, Outbox, Recorder]]:
    """A fresh handler (its own outbox and nonce store) per example."""
    with tempfile.TemporaryDirectory() as folder:
        box = Outbox(Path(folder) / "outbox.db", node, 1_000_000)
        nonces = SqliteNonceStore(Path(folder) / "nonces.db")
        run = Recorder()
        try:
            yield CommandHandler(kind, node, KEY.public_key(), nonces, box, run), box, run
        finally:
            nonces.close()
            box.close()


def answered(box: Outbox, kind: Kind = "gate", node: str = NODE) -> list[CommandResult]:
    out = []
    for item in box.pending(1000):
        assert item.topic == topics.command_result(kind, node)
        model = decode_edge("command/result", item.payload)
        assert isinstance(model, CommandResult)
        out.append(model)
    return out


def truck_command(**over: Any) -> TruckCommand:
    now = utc_now()
    fields: dict[str, Any] = {
        "node_id": "T9",
        "command_id": f"u-{new_nonce()[:8]}",
        "action": "unseal",
        "lock_id": "L1",
        "trip_id": "TR1",
        "lock_token": "AAAAAAAA",
        "issued_at": now,
        "expires_at": now + timedelta(seconds=60),
        "nonce": new_nonce(),
    }
    fields.update(over)
    return TruckCommand(**fields)


def wire(command: SignedCommand) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(command.to_json())
    return data


def run(coro: Any) -> Any:
    return asyncio.run(coro)


# ---- hostile values --------------------------------------------------------------------


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


#: JSON texts no field of a command may be: nesting, huge numbers, NaN, wrong types.
HOSTILE_JSON = st.one_of(
    st.integers(min_value=1, max_value=6000).map(nested),
    st.integers(min_value=1, max_value=5000).map(lambda n: "9" * n),
    st.integers(min_value=1, max_value=400).map(lambda n: "1e" + "9" * n),
    st.sampled_from(["NaN", "Infinity", "-Infinity", "null", "true", "{}", "[]", "-0", "1.5"]),
    st.sampled_from(['"\\ud800"', '"\\u0000"', '"9999-12-31T23:59:59-23:59"', '"0000-00-00"']),
    st.integers(min_value=1, max_value=20000).map(lambda n: json.dumps("x" * n)),
    st.recursive(
        st.none() | st.booleans() | st.floats(allow_nan=False) | st.text(max_size=20),
        lambda inner: (
            st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4)
        ),
        max_leaves=30,
    ).map(lambda v: json.dumps(v)),
)


def readable(raw: bytes) -> bool:
    """Whether a refused payload's command id can be read (to answer under it)."""
    try:  # past the contract's bounds (size, nesting, digits), or not JSON
        check_raw(raw, LIMIT)
        json.loads(raw)
    except (LimitError, ValueError):
        return False
    return True


def with_field(data: dict[str, Any], field: str, value_json: str) -> bytes:
    """`data` as JSON with `field` set to the raw JSON text `value_json`."""
    rest = {k: v for k, v in data.items() if k != field}
    body = json.dumps(rest)
    return (body[:-1] + ("," if rest else "") + json.dumps(field) + ":" + value_json + "}").encode()


# ---- properties ----------------------------------------------------------------------


@FUZZ
@given(raw=st.binary(max_size=2048) | st.text(max_size=2048).map(str.encode))
def test_arbitrary_bytes_never_escape_and_never_execute(raw: bytes) -> None:
    with handler_for() as (handler, box, executor):
        run(handler.handle(raw))
        answer = run(handler.process(raw))
        assert executor.seen == []
        assert answer.result in OUTCOMES - {"done"}
        results = answered(box)
        assert len(results) == (2 if answer.command_id else 0)
        assert all(r.command_id == answer.command_id for r in results)


@FUZZ
@given(
    field=st.sampled_from(
        [
            "node_id",
            "command_id",
            "passage_id",
            "lane",
            "action",
            "reasons",
            "issued_at",
            "expires_at",
            "nonce",
            "signature",
            "extra",
        ]
    ),
    value=HOSTILE_JSON,
)
def test_hostile_field_values_are_refused_with_a_precise_outcome(field: str, value: str) -> None:
    """A valid signed `open` with one field replaced by a hostile value: never executed
    (the signature no longer covers it), answered under its command id."""
    command = sign(gate_command(), KEY)
    raw = with_field(wire(command), field, value)
    with handler_for() as (handler, box, executor):
        answer = run(handler.process(raw))
        assert executor.seen == []
        assert answer.result in {"refused", "bad_signature"}
        assert sum(handler.refusals.values()) == 1
        if not readable(raw):  # not even the id can be read: nothing to answer
            assert (answer.command_id, answered(box)) == (None, [])
            return
        if field != "command_id":
            assert answer.command_id == command.command_id
            assert [r.result for r in answered(box)] == [answer.result]


@FUZZ
@given(
    field=st.sampled_from(["passage_id", "lane", "action", "reasons", "nonce", "extra"]),
    value=HOSTILE_JSON,
)
def test_hostile_values_signed_with_the_key_never_reach_the_executor_invalid(
    field: str, value: str
) -> None:
    """Even under a valid signature (a server bug), a value the model refuses is refused
    before the executor; one it accepts reaches it as the validated model."""
    data = wire(gate_command())
    try:
        data[field] = json.loads(value)
        data["signature"] = base64.b64encode(KEY.sign(signing_bytes(data))).decode()
    except (ValueError, RecursionError):
        assume(False)  # not representable as a signed payload (NaN, nesting, digits)
    raw = json.dumps(data).encode()
    with handler_for() as (handler, box, executor):
        answer = run(handler.process(raw))
        try:
            valid: GateCommand | None = GateCommand.model_validate(data)
        except ValidationError:
            valid = None
        if valid is None:
            assert executor.seen == []
            assert answer.result == "refused"
            [(reason, count)] = handler.refusals.items()
            assert count == 1 and reason in DECODE_REASONS
            assert reason == "too_large" or len(raw) <= LIMIT
        else:
            assert executor.seen == [valid]
            assert answer.result == "done"
        expected = [data["command_id"]] if readable(raw) else []
        assert [r.command_id for r in answered(box)] == expected


@FUZZ
@given(depth=st.integers(min_value=1, max_value=LIMIT))
def test_deep_nesting_and_oversize_are_refused_not_raised(depth: int) -> None:
    with handler_for() as (handler, box, executor):
        raw = ('{"command_id":"c-deep","reasons":' + nested(depth) + "}").encode()
        answer = run(handler.process(raw))
        assert executor.seen == []
        assert answer.result == "refused"
        if len(raw) > LIMIT:
            assert handler.refusals == {"too_large": 1}
        elif depth + 1 > 8:  # contract.limits.MAX_DEPTH
            assert handler.refusals == {"too_deep": 1}
        else:
            assert handler.refusals == {"invalid": 1}
        # past the bounds a payload is not parsed even for its id
        expected = [("c-deep", "refused")] if readable(raw) else []
        assert [(r.command_id, r.result) for r in answered(box)] == expected


@FUZZ
@given(
    case=st.sampled_from(["wrong_node", "expired", "future", "forged", "replay", "tampered"]),
    kind=st.sampled_from(["gate", "truck"]),
)
def test_signed_but_unacceptable_commands_get_their_precise_outcome(case: str, kind: Kind) -> None:
    node = NODE if kind == "gate" else "T9"
    now = utc_now()
    over: dict[str, Any] = {}
    if case == "wrong_node":
        over["node_id"] = "SOMEONE-ELSE"
    elif case == "expired":
        over |= {"issued_at": now - timedelta(minutes=5), "expires_at": now - timedelta(minutes=4)}
    elif case == "future":
        over |= {"issued_at": now + timedelta(hours=1), "expires_at": now + timedelta(hours=2)}
    command = gate_command(**over) if kind == "gate" else truck_command(**over)
    signed = sign(command, OTHER_KEY if case == "forged" else KEY)
    raw = signed.to_json()
    if case == "tampered":
        data = wire(signed)
        data["action"] = "hold" if kind == "gate" else "query"
        raw = json.dumps(data).encode()
    expected = {
        "wrong_node": ("refused", "wrong_node"),
        "expired": ("expired", "expired"),
        "future": ("refused", "future"),
        "forged": ("bad_signature", "bad_signature"),
        "tampered": ("bad_signature", "bad_signature"),
        "replay": ("refused", "replay"),
    }[case]
    with handler_for(kind, node) as (handler, box, executor):
        if case == "replay":
            assert run(handler.process(raw)).result == "done"
            executor.seen.clear()
        answer = run(handler.process(raw))
        assert executor.seen == []
        assert (answer.result, answer.command_id) == (expected[0], signed.command_id)
        assert handler.refusals == {expected[1]: 1}
        assert answered(box, kind, node)[-1].result == expected[0]


def test_a_flood_of_bad_commands_logs_once_per_reason_then_a_valid_one_runs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with handler_for() as (handler, box, executor):
        bad = [
            b"\xff" * 10,
            nested(5000).encode(),
            b'{"command_id":"c-big","lane":' + b"9" * 5000 + b"}",
            sign(gate_command(), OTHER_KEY).to_json(),
            sign(gate_command(node_id="G2"), KEY).to_json(),
        ]
        with caplog.at_level(logging.WARNING, logger="edge.commands"):
            for _ in range(200):
                for raw in bad:
                    run(handler.handle(raw))
        assert handler.refusals == {
            "not_utf8": 200,
            "too_deep": 200,
            "number_too_long": 200,
            "bad_signature": 200,
            "wrong_node": 200,
        }
        lines = [r for r in caplog.records if r.name == "edge.commands"]
        assert len(lines) == 5, [r.getMessage() for r in lines]
        assert executor.seen == []
        good = sign(gate_command(), KEY)
        answer = run(handler.process(good.to_json()))
        assert answer.result == "done"
        assert [c.command_id for c in executor.seen] == [good.command_id]
        assert answered(box)[-1].command_id == good.command_id


def test_an_exception_inside_the_path_is_caught_at_the_boundary() -> None:
    """A nonce store that breaks (disk gone): counted as `error`, never raised."""

    class BrokenNonces:
        def claim(self, nonce: str, expires_at: object) -> bool:
            raise OSError("disk I/O error")

    with handler_for() as (handler, _box, executor):
        handler._verifier._nonces = BrokenNonces()
        run(handler.handle(sign(gate_command(), KEY).to_json()))
        assert handler.refusals == {"internal": 1}
        assert executor.seen == []


def test_timestamps_past_year_9999_in_utc_are_malformed_not_overflow() -> None:
    with handler_for() as (handler, _box, executor):
        data = wire(sign(gate_command(), KEY))
        data["expires_at"] = "9999-12-31T23:59:59.000-23:59"
        answer = run(handler.process(json.dumps(data).encode()))
        assert answer.result == "refused" and "out of range" in answer.detail
        assert handler.refusals == {"invalid": 1}
        assert executor.seen == []
    assert format_ts(utc_now()).endswith("Z")

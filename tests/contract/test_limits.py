"""The contract's bounds (contract/limits.py) hold together: every string and list of every
payload is bounded, the largest payload of each channel fits its byte limit, the broker
takes the largest of them, and docs/contract.md lists them."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from contract.asyncapi import CHANNELS as ASYNCAPI_CHANNELS
from contract.limits import (
    LARGEST_PAYLOAD_BYTES,
    MAX_DEPTH,
    MAX_NUMBER_DIGITS,
    MAX_PAYLOAD_BYTES,
    REJECT_REASONS,
    LimitError,
    check_raw,
)
from contract.payloads import EDGE_PAYLOADS, Declared, GateCommand, TruckCommand, fit_reasons

ROOT = Path(__file__).resolve().parents[2]
COMMANDS = {"command": (GateCommand, TruckCommand)}


def schema_of(model: type) -> tuple[dict[str, Any], dict[str, Any]]:
    schema = model.model_json_schema(mode="validation")  # type: ignore[attr-defined]
    return schema, schema.get("$defs", {})


def unbounded(node: Any, defs: dict[str, Any], path: str = "") -> list[str]:
    """Paths of strings without maxLength/pattern/enum/format and arrays without maxItems."""
    out: list[str] = []
    if isinstance(node, dict):
        if "$ref" in node:
            return unbounded(defs[node["$ref"].rsplit("/", 1)[1]], defs, path)
        kind = node.get("type")
        if kind == "string" and not (
            {"maxLength", "pattern", "enum", "const"} & node.keys()
            or node.get("format") == "date-time"
        ):
            out.append(path or "<root>")
        if kind == "array" and "maxItems" not in node and "prefixItems" not in node:
            out.append(path or "<root>")
        for key, value in node.items():
            if key in ("$defs",):
                continue
            out += unbounded(value, defs, f"{path}.{key}" if key != "properties" else path)
    elif isinstance(node, list):
        for item in node:
            out += unbounded(item, defs, path)
    return out


def every_model() -> list[type]:
    return sorted({m for _, _, m, _, _ in ASYNCAPI_CHANNELS}, key=lambda m: m.__name__)


@pytest.mark.parametrize("model", every_model(), ids=lambda m: m.__name__)
def test_every_string_and_list_is_bounded(model: type) -> None:
    schema, defs = schema_of(model)
    assert unbounded(schema, defs) == []


def largest(node: dict[str, Any], defs: dict[str, Any]) -> Any:
    """The largest JSON value a schema node allows, with ASCII text (its size is what
    matters, not its validity: patterns are only measured)."""
    if "$ref" in node:
        return largest(defs[node["$ref"].rsplit("/", 1)[1]], defs)
    if "anyOf" in node:
        options = [largest(o, defs) for o in node["anyOf"]]
        return max(options, key=lambda v: len(json.dumps(v)))
    if "enum" in node:
        return max(node["enum"], key=lambda v: len(json.dumps(v)))
    if "const" in node:
        return node["const"]
    kind = node.get("type")
    if kind == "object":
        return {k: largest(v, defs) for k, v in node.get("properties", {}).items()}
    if kind == "array":
        if "prefixItems" in node:
            return [largest(item, defs) for item in node["prefixItems"]]
        return [largest(node["items"], defs)] * node["maxItems"]
    if kind == "string":
        if node.get("format") == "date-time":
            return "2026-11-23T08:15:02.250+08:00"
        if "maxLength" in node:
            return "x" * node["maxLength"]
        counts = [int(n) for n in re.findall(r"\{(?:\d+,)?(\d+)\}", node["pattern"])]
        return "x" * (sum(counts) or 16)
    if kind == "integer":
        return -(2**63)
    if kind == "number":
        return -1.2345678901234567e-300
    if kind == "boolean":
        return False
    if kind == "null":
        return None
    raise AssertionError(f"no largest value for {node}")


@pytest.mark.parametrize(
    ("channel", "model"),
    [
        *EDGE_PAYLOADS.items(),
        ("command", GateCommand),
        ("command", TruckCommand),
        ("declared", Declared),
    ],
)
def test_the_largest_payload_fits_its_channel(channel: str, model: type) -> None:
    schema, defs = schema_of(model)
    size = len(json.dumps(largest(schema, defs)).encode())
    assert size <= MAX_PAYLOAD_BYTES[channel], (channel, size)


def test_gate_command_reasons_are_made_to_fit() -> None:
    reasons = ["r" * 1000] + [f"reason {n}" for n in range(99)]
    fitted = fit_reasons(reasons)
    assert len(fitted) == 32 and all(len(r) <= 300 for r in fitted)
    assert fitted[0].endswith("…") and fitted[-1] == "… and 69 more reasons"
    assert fit_reasons(["a", "b"]) == ["a", "b"]


def test_the_broker_takes_the_largest_payload() -> None:
    conf = (ROOT / "config" / "mosquitto" / "conf.d" / "bondwatch.conf").read_text()
    packet = int(re.search(r"^max_packet_size (\d+)$", conf, re.M).group(1))  # type: ignore[union-attr]
    # fixed header 5, topic length 2 + topic (prefix, kind, 64-char node id, channel), packet
    # id 2, MQTT 5 properties (user properties of contract.mqtt_properties included)
    assert packet >= LARGEST_PAYLOAD_BYTES + 1024
    assert packet <= 4 * LARGEST_PAYLOAD_BYTES  # not an open door either


def test_the_contract_document_lists_the_limits() -> None:
    text = (ROOT / "docs" / "contract.md").read_text(encoding="utf-8")
    limits = text[text.index("### Limits") :]
    for channel, size in MAX_PAYLOAD_BYTES.items():
        assert f"`{channel}` | {size // 1024} KiB" in limits, channel
    for reason in REJECT_REASONS:
        assert f"`{reason}`" in limits, reason
    assert f"depth {MAX_DEPTH}" in limits and f"{MAX_NUMBER_DIGITS} digits" in limits


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"x" * 101, "too_large"),
        (b"\xc3\x28", "not_utf8"),
        (b"\xed\xa0\x80", "not_utf8"),  # an encoded surrogate
        (b"[" * 9 + b"]" * 9, "too_deep"),
        (b"[{" * 5 + b"}]" * 5, "too_deep"),  # alternating: depth 10
        (b"[{" * 4 + b"}]" * 4, None),  # depth 8 exactly
        (b'{"a": "\\\\", "b": ' + b"[" * 9 + b"]" * 9 + b"}", "too_deep"),  # after "\\"
        (b'{"a": [' + b"{}," * 50 + b"{}]}", None),  # wide, not deep
        (b'{"a": "' + b"[" * 50 + b'"}', None),  # brackets inside a string
        (b'{"a": "\\"[[[[[[[[[[\\""}', None),  # … after an escaped quote
        (b'{"a": ' + b"1" * 41 + b"}", "number_too_long"),
        (b'{"a": 1.' + b"0" * 40 + b"}", None),  # 40 digits in a run: allowed
        (b'{"a": "' + b"1" * 60 + b'"}', None),  # digits inside a string
    ],
)
def test_check_raw(raw: bytes, reason: str | None) -> None:
    limit = 100 if reason == "too_large" else 10_000
    if reason is None:
        check_raw(raw, limit)
        return
    with pytest.raises(LimitError) as refused:
        check_raw(raw, limit)
    assert refused.value.reason == reason

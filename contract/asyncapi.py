"""The AsyncAPI 2.6 document of the MQTT interface, generated from the payload models.

`python -m contract.asyncapi > docs/asyncapi.json` regenerates it; a test keeps the
committed document equal to what the models say.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from pydantic import BaseModel

from contract.payloads import (
    Ack,
    Availability,
    CommandResult,
    Declared,
    GateCommand,
    Health,
    LaneStatus,
    LockReport,
    Passage,
    Position,
    TruckCommand,
)
from contract.version import CONTRACT_VERSION, TOPIC_PREFIX

# (channel template, publisher, model, retained, description)
CHANNELS: list[tuple[str, str, type[BaseModel], bool, str]] = [
    (
        "{kind}/{node_id}/availability",
        "edge",
        Availability,
        True,
        "online/offline/stopped; offline is the last will",
    ),
    (
        "truck/{node_id}/position",
        "edge",
        Position,
        False,
        "a GNSS fix; replayed=true when sent from the outbox after a gap",
    ),
    ("truck/{node_id}/lock", "edge", LockReport, False, "an e-lock state report or event"),
    ("{kind}/{node_id}/health", "edge", Health, False, "a device's health changed"),
    ("gate/{node_id}/passage", "edge", Passage, False, "a truck passed a gate lane: OCR readings"),
    (
        "gate/{node_id}/lane",
        "edge",
        LaneStatus,
        True,
        "the lane's state and its traffic light (red/green), on every change",
    ),
    ("gate/{node_id}/command", "server", GateCommand, False, "signed open/hold for one passage"),
    ("truck/{node_id}/command", "server", TruckCommand, False, "signed unseal/query"),
    (
        "{kind}/{node_id}/command/result",
        "edge",
        CommandResult,
        False,
        "what a device did with a command",
    ),
    (
        "{kind}/{node_id}/ack",
        "server",
        Ack,
        False,
        "the node's seqs the server has durably stored: the node keeps a message in its "
        "outbox until an ack covers it (docs/edge-outbox.md)",
    ),
    (
        "truck/{node_id}/declared",
        "server",
        Declared,
        True,
        "the truck's open trips and the locks their declarations name, on every change "
        "and at the server's start; cleared (an empty retained payload) when none is open. "
        "A JT/T 808 gateway maps its cellular locks by it (docs/jt808-gateway.md)",
    ),
]


def document() -> dict[str, Any]:
    channels: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    for template, publisher, model, retained, text in CHANNELS:
        name = model.__name__
        schema = model.model_json_schema(
            mode="serialization", ref_template="#/components/schemas/{model}"
        )
        schemas.update(schema.pop("$defs", {}))
        schemas[name] = schema
        params: dict[str, Any] = {
            "node_id": {"schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"}},
        }
        if "{kind}" in template:
            params["kind"] = {"schema": {"type": "string", "enum": ["truck", "gate"]}}
        # AsyncAPI describes what the application (the server) does: it subscribes to
        # edge messages and publishes commands.
        operation = "subscribe" if publisher == "server" else "publish"
        channels[f"{TOPIC_PREFIX}/{template}"] = {
            "description": text,
            "parameters": params,
            operation: {
                "operationId": f"{publisher}_{name}",
                "bindings": {"mqtt": {"qos": 1, "retain": retained}},
                "message": {
                    "name": name,
                    "contentType": "application/json",
                    "payload": {"$ref": f"#/components/schemas/{name}"},
                },
            },
        }
    return {
        "asyncapi": "2.6.0",
        "info": {
            "title": "BondWatch MQTT interface",
            "version": CONTRACT_VERSION,
            "description": "Edge→server telemetry and server→edge signed commands. Every "
            "edge payload carries node_id, seq (strictly increasing per node) and ts "
            "(RFC 3339 UTC, ms). Commands are Ed25519-signed over the canonical JSON of "
            "the payload without `signature` (keys sorted, no spaces, UTF-8), base64.",
        },
        "defaultContentType": "application/json",
        "channels": channels,
        "components": {"schemas": dict(sorted(schemas.items()))},
    }


def render() -> str:
    return json.dumps(document(), indent=2, ensure_ascii=False, sort_keys=False) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())

"""Officers' corrections of passage readings as the API shows them beside the passage
(written by `server.gates.corrections`)."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Connection, select

from contract.ids import format_ts
from contract.payloads import ContainerReading, PlateReading
from server.store import schema
from server.store.database import as_utc

_c = schema.passage_corrections.c


def newest_corrections(conn: Connection, passage_ids: list[str]) -> dict[str, dict[str, Any]]:
    """passage id → its newest correction (for the passages as the API shows them)."""
    if not passage_ids:
        return {}
    out: dict[str, dict[str, Any]] = {}
    rows = conn.execute(
        select(schema.passage_corrections)
        .where(_c.passage_id.in_(passage_ids))
        .order_by(_c.passage_id, _c.id)
    )
    for row in rows:
        m = row._mapping
        at = as_utc(m["corrected_at"])
        out[m["passage_id"]] = {
            "containers": _json(m["containers"]),
            "plate": _json(m["plate"]),
            "comment": m["comment"],
            "by": m["corrected_by"],
            "at": format_ts(at) if at else None,
            "previous_decision": m["previous_decision"],
            "previous_reasons": _json(m["previous_reasons"]),
            "lane_state": m["lane_state"],
            "command_id": m["command_id"],
        }
    return out


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def readings_in_force(
    passage: dict[str, Any],
) -> tuple[list[ContainerReading], PlateReading | None]:
    """The readings a passage (as `GateStore.list_passages` gives it) is decided on: its
    newest correction's, else the camera's."""
    readings = passage.get("correction") or passage
    containers = [ContainerReading.model_validate(c) for c in readings["containers"]]
    plate = PlateReading.model_validate(readings["plate"]) if readings["plate"] else None
    return containers, plate

"""Dead letters: the edge messages the ingest refused, kept for an admin to look at.

The ingest writes them in batches, like the valid messages (`Ingest._write_loop`), each
batch in one transaction that also drops the oldest beyond the configured number, so a
flood of bad messages costs one small write per batch and a bounded table.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, delete, func, select

from server.store import schema
from server.store.database import as_utc
from server.store.writer_lock import BATCH_POLL_S, let_urgent_first, write_transaction

#: The raw bytes kept of each refused message (the rest is counted in `size`).
RAW_BYTES = 2048
#: Characters kept of a refusal's detail and of its topic.
DETAIL_CHARS = 1000
TOPIC_CHARS = 256
#: Dead letters kept unless configured otherwise (`ingest.dead_letters_max`).
DEFAULT_MAX = 10_000


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One refused message, as stored."""

    received_at: datetime
    topic: str
    kind: str | None
    node_id: str | None
    channel: str | None
    reason: str
    detail: str
    device_ts: datetime | None
    raw: bytes

    def row(self) -> dict[str, Any]:
        return {
            "received_at": self.received_at,
            "topic": self.topic[:TOPIC_CHARS],
            "kind": self.kind,
            "node_id": self.node_id,
            "channel": self.channel,
            "reason": self.reason,
            "detail": self.detail[:DETAIL_CHARS],
            "device_ts": self.device_ts,
            "size": len(self.raw),
            "raw": self.raw[:RAW_BYTES],
        }


class DeadLetters:
    """The `dead_letters` table, kept to `keep` rows (the newest)."""

    def __init__(self, engine: Engine, keep: int = DEFAULT_MAX) -> None:
        self._engine = engine
        self._keep = keep

    def add(self, letters: Sequence[DeadLetter]) -> None:
        """Store `letters` and drop the oldest beyond `keep`, in one transaction."""
        if not letters:
            return
        rows = [letter.row() for letter in letters[-self._keep :]]
        t = schema.dead_letters
        let_urgent_first(self._engine)
        with write_transaction(self._engine, BATCH_POLL_S) as conn:
            conn.execute(t.insert(), rows)
            newest_dropped = (
                select(t.c.id).order_by(t.c.id.desc()).offset(self._keep).limit(1)
            ).scalar_subquery()
            conn.execute(delete(t).where(t.c.id <= newest_dropped))

    def list(
        self,
        node_id: str | None = None,
        reason: str | None = None,
        channel: str | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """The newest dead letters first, filtered; `raw` as text (invalid UTF-8 escaped
        as `\\xNN`) and as base64."""
        t = schema.dead_letters
        query = select(t).order_by(t.c.id.desc()).limit(limit)
        if node_id is not None:
            query = query.where(t.c.node_id == node_id)
        if reason is not None:
            query = query.where(t.c.reason == reason)
        if channel is not None:
            query = query.where(t.c.channel == channel)
        with self._engine.connect() as conn:
            return [_out(row._mapping) for row in conn.execute(query)]

    def count(self) -> int:
        with self._engine.connect() as conn:
            return int(
                conn.execute(select(func.count()).select_from(schema.dead_letters)).scalar_one()
            )


def _out(row: Any) -> dict[str, Any]:
    out = dict(row)
    raw = bytes(out.pop("raw"))
    out["received_at"] = as_utc(out["received_at"])
    out["device_ts"] = as_utc(out["device_ts"])
    out["raw_text"] = raw.decode("utf-8", "backslashreplace")
    out["raw_base64"] = base64.b64encode(raw).decode("ascii")
    out["truncated"] = out["size"] > len(raw)
    return out

"""Audit REST endpoints: the hash-chained log and its verification."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, Field

from contract.ids import parse_ts
from contract.version import API_PREFIX
from server.api.errors import ApiError
from server.api.params import Offset
from server.audit import AuditQuery, list_entries, verify
from server.audit.checkpointer import AuditCheckpoints
from server.audit.sinks import CheckpointSourceError

router = APIRouter(prefix=API_PREFIX, tags=["audit"])


class AuditEntryOut(BaseModel):
    seq: int
    at: str
    actor: str
    action: str = Field(description="e.g. declaration.create, alarm.ack")
    object_type: str
    object_id: str
    details: dict[str, Any]
    prev_hash: str = Field(description="hash of entry seq-1 (64 zeros for entry 1)")
    hash: str = Field(description="SHA-256 of the canonical JSON of the other fields")


class VerifyOut(BaseModel):
    ok: bool
    entries: int
    first_bad_seq: int | None = Field(default=None, description="first broken entry")
    reason: str | None = None
    checkpoints: int | None = Field(
        default=None,
        description="signed checkpoints checked (absent: none configured, see audit.checkpoints)",
    )
    checkpoint: str | None = Field(
        default=None, description="the checkpoint that failed, as `file:line`"
    )


def _time(name: str, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return parse_ts(value)
    except ValueError as err:
        raise ApiError(
            422, "invalid", f"{name} must be RFC 3339 with a zone, e.g. 2026-11-23T08:00:00Z", name
        ) from err


@router.get("/audit", response_model=list[AuditEntryOut])
async def list_audit(
    request: Request,
    response: Response,
    actor: Annotated[str | None, Query(description="who acted")] = None,
    action: Annotated[str | None, Query(description="e.g. alarm.ack, declaration.create")] = None,
    object_type: Annotated[str | None, Query(description="e.g. alarm, declaration")] = None,
    object_id: Annotated[str | None, Query()] = None,
    since: Annotated[str | None, Query(description="RFC 3339, inclusive")] = None,
    until: Annotated[str | None, Query(description="RFC 3339, inclusive")] = None,
    order: Annotated[Literal["asc", "desc"], Query(description="by seq")] = "desc",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Offset = 0,
) -> list[dict[str, Any]]:
    """Audit entries, newest first by default; `X-Total-Count` holds the number matching."""
    query = AuditQuery(
        actor=actor,
        action=action,
        object_type=object_type,
        object_id=object_id,
        since=_time("since", since),
        until=_time("until", until),
        limit=limit,
        offset=offset,
        newest_first=order == "desc",
    )
    engine = request.app.state.services.store.engine
    entries, total = await asyncio.to_thread(list_entries, engine, query)
    response.headers["X-Total-Count"] = str(total)
    return [e.as_json() for e in entries]


@router.get("/audit/verify", response_model=VerifyOut, response_model_exclude_none=True)
async def verify_audit(request: Request) -> dict[str, Any]:
    """Walk the chain and check it against the newest signed checkpoints (when configured):
    `{"ok", "entries", "first_bad_seq"?, "reason"?, "checkpoints"?, "checkpoint"?}`."""
    svc = request.app.state.services
    checker: AuditCheckpoints | None = getattr(svc, "audit_checkpoints", None)
    if checker is None:
        result = await asyncio.to_thread(verify, svc.store.engine)
        return result.as_json()
    try:
        result = await asyncio.to_thread(checker.verify, svc.store.engine)
    except CheckpointSourceError as err:
        chain = await asyncio.to_thread(verify, svc.store.engine)
        if not chain.ok:
            return chain.as_json()
        return {**chain.as_json(), "ok": False, "reason": f"checkpoints cannot be read: {err}"}
    return result.as_json()

"""`GET /api/v1/dead-letters`: the edge messages the ingest refused (admins only).

Who may call it is said in server.auth.policy (the guard of every /api/v1 router).
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from contract.limits import RejectReason
from contract.topics import Channel
from contract.version import API_PREFIX
from server.store.dead_letters import RAW_BYTES, DeadLetters

router = APIRouter(prefix=API_PREFIX, tags=["dead letters"])


class DeadLetterOut(BaseModel):
    id: int
    received_at: datetime
    topic: str
    kind: str | None
    node_id: str | None = Field(description="the topic's node id (None: the topic did not parse)")
    channel: str | None
    reason: RejectReason
    detail: str
    device_ts: datetime | None = Field(description="the payload's own ts, when it was read")
    size: int = Field(description="bytes the message had")
    raw_text: str = Field(
        description=f"its first {RAW_BYTES} bytes as UTF-8, invalid bytes written \\xNN"
    )
    raw_base64: str = Field(description=f"its first {RAW_BYTES} bytes, base64")
    truncated: bool = Field(description=f"the message had more than {RAW_BYTES} bytes")


@router.get("/dead-letters", response_model=list[DeadLetterOut])
async def list_dead_letters(
    request: Request,
    node: Annotated[str | None, Query(max_length=64, description="the topic's node id")] = None,
    reason: Annotated[RejectReason | None, Query()] = None,
    channel: Annotated[Channel | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    """Refused edge messages, newest first."""
    letters = DeadLetters(request.app.state.services.store.engine)
    return await asyncio.to_thread(letters.list, node, reason, channel, limit)

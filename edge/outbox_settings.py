"""Config model of the outbox and the MQTT link, for the agents' YAML (`outbox:` block)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class OutboxSettings(BaseModel):
    """Where and how much an edge node buffers, and how it drains to the broker."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["sqlite"] = Field(default="sqlite", description="outbox store (SQLite file)")
    path: Path = Field(
        description="outbox database file; on persistent storage, one per node, never shared"
    )
    nonce_path: Path = Field(
        description="database file remembering command nonces (replay protection)"
    )
    max_bytes: int = Field(
        default=256 * 1024 * 1024,
        ge=4096,
        description="payload bytes the outbox may hold before old positions are thinned",
    )
    min_free_disk_bytes: int = Field(
        default=64 * 1024 * 1024,
        ge=0,
        description="free space kept on the file system; below it the outbox counts as full",
    )
    max_inflight: int = Field(
        default=64, ge=1, le=1000, description="QoS 1 publishes awaiting PUBACK at once"
    )
    replay_after_s: float = Field(
        default=30.0,
        gt=0,
        description="messages older than this when sent are flagged replayed",
    )
    publish_timeout_s: float = Field(
        default=30.0, gt=0, description="wait this long for a PUBACK before reconnecting"
    )
    ack_timeout_s: float = Field(
        default=10.0,
        gt=0,
        le=3600,
        description="after a reconnect, messages the broker took earlier and the server "
        "has not acknowledged within this time are sent again",
    )
    ack_fallback_s: float | None = Field(
        default=300.0,
        gt=0,
        le=30 * 24 * 3600,
        description="a server that has never acknowledged anything (older than this "
        "agent) for this long: the broker's PUBACK ends a message's life again, with a "
        "warning; null: never (once every server acknowledges)",
    )

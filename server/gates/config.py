"""Configuration of gate decisions, commands and remote unseal (`gates:`, `trips:`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from contract.ids import NODE_ID_PATTERN

NodeKey = Annotated[str, StringConstraints(pattern=NODE_ID_PATTERN)]


class GatesSettings(BaseModel):
    """Gate controllers, gate commands and the remote unseal (docs/gates.md)."""

    model_config = ConfigDict(extra="forbid")

    nodes: dict[NodeKey, str] = Field(
        default_factory=dict,
        description="gate controller node id → gate id of the geography; a gate whose "
        "controller is not listed here is reached at the node id equal to its gate_id",
    )
    command_ttl_s: float = Field(
        default=30.0, gt=0, le=600, description="seconds a signed gate or lock command is valid"
    )
    judge_wait_s: float = Field(
        default=1.0,
        ge=0,
        le=10,
        description="seconds an arrival waits for the judge to catch up with the truck's "
        "stored messages before it is held with the reason `judging` (decided again by the "
        "server once the judge has caught up); only where passages are taken by the gate "
        "worker (ingest.passages: process)",
    )
    lock_secrets_file: Path | None = Field(
        default=None,
        description="YAML file mapping lock id → the lock's secret (UTF-8 text of 16 "
        "characters or more, as provisioned into the lock); keep it under the secrets "
        "directory. It makes the locks' single-use tokens and checks the MAC of their "
        "reports (LOCK_REPORT_FORGED); a lock missing from it cannot be unsealed remotely "
        "and a truck carrying it is held at the gate (lock_unauthenticated)",
    )
    unseal_token_ttl_s: int = Field(
        default=300,
        ge=10,
        le=3600,
        description="seconds an unseal token stays valid in the lock (it works once)",
    )
    unseal_position_max_age_s: float = Field(
        default=300.0,
        gt=0,
        description="the truck's last fix must be at most this old to authorise an unseal",
    )
    unseal_site_margin_m: float = Field(
        default=0.0,
        ge=0,
        le=500,
        description="metres outside the destination site's fence still counted as inside",
    )


class TripSettings(BaseModel):
    """How trips start when no departure-gate passage starts them."""

    model_config = ConfigDict(extra="forbid")

    start_on_first_fix: bool = Field(
        default=False,
        description="start a declared trip at its vehicle's first fix (sites without a "
        "departure gate controller, demos); normally the departure gate's open starts it",
    )

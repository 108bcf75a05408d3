"""What the REST API and the ingest share: store, geography, metrics."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from server.alarms import AlarmService
from server.audit.checkpointer import AuditCheckpoints
from server.config import ServerConfig
from server.geo import Geography
from server.metrics import Metrics
from server.rules.profiles import CreditClass, CreditProfile
from server.store import Store
from server.stream.hub import Hub


@dataclass
class Services:
    config: ServerConfig
    store: Store
    geography: Geography
    profiles: dict[CreditClass, CreditProfile]
    metrics: Metrics = field(default_factory=Metrics)
    ingest_connected: Callable[[], bool] = lambda: False
    #: live events for `WS /api/v1/stream` (server.stream)
    stream: Hub = field(default_factory=Hub)
    #: the alarm service shared by the judge and the REST API (its changes reach `stream`)
    alarms: AlarmService | None = None
    #: signs the audit chain's checkpoints (None: `audit.checkpoints` not configured)
    audit_checkpoints: AuditCheckpoints | None = None

"""What the REST API and the ingest share: store, geography, alarms, gates, metrics.

Built once by the server (`server.app.ServerApp`), every collaborator passed in."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from server.alarms import AlarmService
from server.audit.checkpointer import AuditCheckpoints
from server.config import ServerConfig
from server.declared import DeclaredPublisher
from server.evidence.service import EvidenceService
from server.gates.service import GateService
from server.geo import Geography
from server.lock_secrets import LockSecrets
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
    #: the alarm service shared by the judge and the REST API (its changes reach `stream`)
    alarms: AlarmService
    #: lock id → secret (`gates.lock_secrets_file`), read once by the server
    lock_secrets: LockSecrets
    #: passage decisions, officer actions, remote unseal (its passages reach `stream`)
    gates: GateService
    #: the passages' images (`evidence:` in the server file)
    evidence: EvidenceService
    metrics: Metrics
    #: whether every broker connection (and child process) of the server is up
    ingest_connected: Callable[[], bool]
    #: live events for `WS /api/v1/stream` (server.stream)
    stream: Hub
    #: signs the audit chain's checkpoints (None: `audit.checkpoints` not configured)
    audit_checkpoints: AuditCheckpoints | None
    #: the trucks' `declared` lists, woken by a new declaration (None: no broker)
    declared: DeclaredPublisher | None = None

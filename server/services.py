"""What the REST API and the ingest share: store, geography, metrics."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from server.config import ServerConfig
from server.geo import Geography
from server.metrics import Metrics
from server.rules.profiles import CreditClass, CreditProfile
from server.store import Store


@dataclass
class Services:
    config: ServerConfig
    store: Store
    geography: Geography
    profiles: dict[CreditClass, CreditProfile]
    metrics: Metrics = field(default_factory=Metrics)
    ingest_connected: Callable[[], bool] = lambda: False

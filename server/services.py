"""What the REST API and the ingest share: store, geography, metrics."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from server.api.geography import GeoJsonLayers
from server.config import ServerConfig
from server.metrics import Metrics
from server.store import Store


@dataclass
class Services:
    config: ServerConfig
    store: Store
    layers: GeoJsonLayers
    metrics: Metrics = field(default_factory=Metrics)
    ingest_connected: Callable[[], bool] = lambda: False

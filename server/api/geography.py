"""Configured geography as GeoJSON: `/routes`, `/zones`, `/gates`."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class GeographyFileError(ValueError):
    pass


@dataclass
class GeoJsonLayers:
    """The raw layers the console draws; the rules use the indexed `server.geo` form."""

    routes: list[dict[str, Any]] = field(default_factory=list)
    zones: list[dict[str, Any]] = field(default_factory=list)
    gates: list[dict[str, Any]] = field(default_factory=list)

    @property
    def route_ids(self) -> set[str]:
        return {
            f["properties"]["route_id"]
            for f in self.routes
            if f["properties"].get("kind") == "route"
        }

    @property
    def gate_ids(self) -> set[str]:
        return {f["properties"]["gate_id"] for f in self.gates}

    @staticmethod
    def collection(features: list[dict[str, Any]]) -> dict[str, Any]:
        return {"type": "FeatureCollection", "features": features}


def _features(path: Path) -> list[dict[str, Any]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise GeographyFileError(f"{path}: cannot read GeoJSON: {err}") from err
    if not isinstance(data, dict) or data.get("type") != "FeatureCollection":
        raise GeographyFileError(f"{path}: expected a GeoJSON FeatureCollection")
    features = data.get("features")
    if not isinstance(features, list):
        raise GeographyFileError(f"{path}: FeatureCollection without a features list")
    return features


def load_layers(routes: list[Path], zones: list[Path]) -> GeoJsonLayers:
    layers = GeoJsonLayers()
    seen: set[tuple[str, str]] = set()
    for path in routes:
        for feature in _features(path):
            props = feature.get("properties") or {}
            kind = props.get("kind")
            ident = str(props.get(f"{kind}_id"))
            if (str(kind), ident) in seen:
                continue  # sites and gates shared by several routes appear once
            seen.add((str(kind), ident))
            if kind == "gate":
                layers.gates.append(feature)
            elif kind in ("route", "site"):
                layers.routes.append(feature)
    for path in zones:
        layers.zones.extend(_features(path))
    return layers

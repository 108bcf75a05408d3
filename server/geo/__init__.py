"""Routes as corridors, sites, gates and zones, loaded from GeoJSON and indexed per fix."""

from server.geo.index import Geography
from server.geo.loader import (
    GeoConfigError,
    RouteFile,
    load_all,
    load_route_file,
    load_zone_file,
    parse_route_collection,
    parse_zone_collection,
)
from server.geo.model import ZONE_KINDS, Gate, Route, Site, Zone, ZoneKind
from server.geo.projection import TransverseMercator

__all__ = [
    "ZONE_KINDS",
    "Gate",
    "GeoConfigError",
    "Geography",
    "Route",
    "RouteFile",
    "Site",
    "TransverseMercator",
    "Zone",
    "ZoneKind",
    "load_all",
    "load_route_file",
    "load_zone_file",
    "parse_route_collection",
    "parse_zone_collection",
]

"""Reading route and zone GeoJSON files, with errors that name the file and the feature.

A route file is a FeatureCollection holding exactly one route line
(`LineString`, properties `kind: "route"`, `route_id`, `name`, `corridor_m`), the sites it
joins (`Polygon`, `kind: "site"`, `site_id`, `name`, `role`: `origin` | `destination`) and
their gates (`Point`, `kind: "gate"`, `gate_id`, `site_id`, `name`).
A zone file is a FeatureCollection of Polygons with `zone_id`, `name`, `kind`
(`forbidden` | `stop` | `tunnel` | `urban`) and optionally `max_speed_kmh`.
Coordinates are WGS-84 `[lon, lat]` (RFC 7946).

Every problem in a file is collected and reported together (`GeoConfigError.errors`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, cast

from shapely.geometry import LineString, Polygon
from shapely.validation import explain_validity

from server.geo.model import ZONE_KINDS, Gate, Route, Site, Zone, ZoneKind

#: Where a [lat, lon] pair in China would put its numbers (a swapped-order hint).
_CHINA_LAT: Final = (17.0, 54.0)
_CHINA_LON: Final = (73.0, 136.0)
#: A corridor wider than this (half-width) is surely a unit mistake.
MAX_CORRIDOR_M: Final = 50_000.0


class GeoConfigError(ValueError):
    """One or more problems in geography files; `errors` holds one line per problem."""

    def __init__(self, errors: list[str]) -> None:
        self.errors = list(errors)
        head = f"{len(self.errors)} problem(s) in geography configuration"
        super().__init__(head + ":\n  " + "\n  ".join(self.errors))


@dataclass
class RouteFile:
    """What one route file holds."""

    route: Route
    sites: list[Site] = field(default_factory=list)
    gates: list[Gate] = field(default_factory=list)


class _Problems:
    def __init__(self, source: str) -> None:
        self.source = source
        self.errors: list[str] = []

    def add(self, where: str, message: str) -> None:
        self.errors.append(f"{self.source}: {where}: {message}")


def _where(index: int, props: Mapping[str, Any], id_key: str | None) -> str:
    ident = props.get(id_key) if id_key else None
    if isinstance(ident, str) and ident:
        return f"feature #{index} ({id_key} {ident!r})"
    return f"feature #{index}"


def _read_json(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise GeoConfigError([f"{path}: cannot read: {err.strerror or err}"]) from err
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise GeoConfigError(
            [f"{path}: not valid JSON at line {err.lineno} column {err.colno}: {err.msg}"]
        ) from err


def _features(data: Any, problems: _Problems) -> list[dict[str, Any]]:
    if not isinstance(data, dict) or data.get("type") != "FeatureCollection":
        problems.add("top level", "must be a GeoJSON FeatureCollection")
        return []
    feats = data.get("features")
    if not isinstance(feats, list):
        problems.add("top level", "'features' must be a list")
        return []
    return cast(list[dict[str, Any]], feats)


def _check_positions(
    coords: list[list[float]], where: str, problems: _Problems
) -> list[tuple[float, float]] | None:
    """Validate `[lon, lat]` positions; None (with problems recorded) when unusable."""
    out: list[tuple[float, float]] = []
    for pos in coords:
        if (
            not isinstance(pos, list | tuple)
            or len(pos) < 2
            or not all(
                isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
                for v in pos[:2]
            )
        ):
            problems.add(where, f"position {pos!r} is not a [lon, lat] pair of finite numbers")
            return None
        out.append((float(pos[0]), float(pos[1])))
    if any(abs(lat) > 90.0 for _, lat in out):
        hint = ""
        if all(abs(lon) <= 90.0 for lon, _ in out):
            hint = " — the values look like [lat, lon]; GeoJSON order is [lon, lat]"
        problems.add(where, f"latitude out of range [-90, 90]{hint}")
        return None
    if any(abs(lon) > 180.0 for lon, _ in out):
        problems.add(where, "longitude out of range [-180, 180]")
        return None
    if out and all(
        _CHINA_LAT[0] <= lon <= _CHINA_LAT[1] and _CHINA_LON[0] <= lat <= _CHINA_LON[1]
        for lon, lat in out
    ):
        problems.add(
            where,
            f"coordinates like {list(out[0])} look like [lat, lon] in China; "
            "GeoJSON order is [lon, lat] — swap them",
        )
        return None
    return out


def _line(geom: Mapping[str, Any], where: str, problems: _Problems) -> LineString | None:
    coords = geom.get("coordinates")
    if not isinstance(coords, list):
        problems.add(where, "LineString needs a list of coordinates")
        return None
    pts = _check_positions(coords, where, problems)
    if pts is None:
        return None
    if len(pts) < 2 or len(set(pts)) < 2:
        problems.add(where, "LineString needs at least two distinct positions")
        return None
    return LineString(pts)


def _polygon(geom: Mapping[str, Any], where: str, problems: _Problems) -> Polygon | None:
    rings = geom.get("coordinates")
    if not isinstance(rings, list) or not rings or not all(isinstance(r, list) for r in rings):
        problems.add(where, "Polygon needs a list of linear rings")
        return None
    checked: list[list[tuple[float, float]]] = []
    for n, ring in enumerate(rings):
        pts = _check_positions(ring, where, problems)
        if pts is None:
            return None
        if len(pts) < 4 or pts[0] != pts[-1]:
            problems.add(
                where, f"ring {n} must be closed (first position repeated last) with ≥ 4 positions"
            )
            return None
        checked.append(pts)
    poly = Polygon(checked[0], checked[1:])
    if not poly.is_valid:
        problems.add(where, f"invalid polygon: {explain_validity(poly)}")
        return None
    if poly.area <= 0.0:
        problems.add(where, "polygon has no area")
        return None
    return poly


def _text(props: Mapping[str, Any], key: str, where: str, problems: _Problems) -> str | None:
    value = props.get(key)
    if not isinstance(value, str) or not value.strip():
        problems.add(where, f"property {key!r} is missing or not a non-empty string")
        return None
    return value


def _number(
    props: Mapping[str, Any], key: str, where: str, problems: _Problems, *, required: bool
) -> float | None:
    value = props.get(key)
    if value is None:
        if required:
            problems.add(where, f"property {key!r} is missing")
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        problems.add(where, f"property {key!r} must be a number, not {value!r}")
        return None
    if value <= 0:
        problems.add(where, f"property {key!r} must be positive, not {value!r}")
        return None
    return float(value)


def _geometry(feat: Any, where: str, problems: _Problems) -> tuple[str, Mapping[str, Any]] | None:
    if not isinstance(feat, dict) or feat.get("type") != "Feature":
        problems.add(where, "must be a GeoJSON Feature")
        return None
    geom = feat.get("geometry")
    if not isinstance(geom, dict) or not isinstance(geom.get("type"), str):
        problems.add(where, "has no geometry")
        return None
    return cast(str, geom["type"]), geom


def parse_route_collection(data: Any, source: str) -> RouteFile:
    """One route file's decoded JSON → `RouteFile`, or `GeoConfigError` listing all problems."""
    problems = _Problems(source)
    routes: list[Route] = []
    sites: dict[str, Site] = {}
    site_roles: dict[str, str] = {}
    gates: dict[str, Gate] = {}
    for index, feat in enumerate(_features(data, problems)):
        props = feat.get("properties") if isinstance(feat, dict) else None
        props = props if isinstance(props, dict) else {}
        kind = props.get("kind")
        id_key = {"route": "route_id", "site": "site_id", "gate": "gate_id"}.get(str(kind))
        where = _where(index, props, id_key)
        got = _geometry(feat, where, problems)
        if got is None:
            continue
        gtype, geom = got
        if kind == "route":
            if gtype != "LineString":
                problems.add(where, f"a route must be a LineString, not {gtype}")
                continue
            line = _line(geom, where, problems)
            rid = _text(props, "route_id", where, problems)
            name = _text(props, "name", where, problems)
            corridor = _number(props, "corridor_m", where, problems, required=True)
            if corridor is not None and corridor > MAX_CORRIDOR_M:
                problems.add(
                    where, f"corridor_m {corridor} is over {MAX_CORRIDOR_M} m (half-width)"
                )
                corridor = None
            if line is None or rid is None or name is None or corridor is None:
                continue
            routes.append(Route(rid, name, corridor, line, source=source))
        elif kind == "site":
            if gtype != "Polygon":
                problems.add(where, f"a site must be a Polygon, not {gtype}")
                continue
            poly = _polygon(geom, where, problems)
            sid = _text(props, "site_id", where, problems)
            name = _text(props, "name", where, problems)
            role = props.get("role")
            if role not in ("origin", "destination"):
                problems.add(
                    where, f"property 'role' must be 'origin' or 'destination', not {role!r}"
                )
                continue
            if poly is None or sid is None or name is None:
                continue
            if sid in sites:
                problems.add(where, f"duplicate site_id {sid!r} in this file")
                continue
            if role in site_roles.values():
                problems.add(
                    where, f"a second {role} site; a route has one origin and one destination"
                )
                continue
            sites[sid] = Site(sid, name, poly, source=source)
            site_roles[sid] = str(role)
        elif kind == "gate":
            if gtype != "Point":
                problems.add(where, f"a gate must be a Point, not {gtype}")
                continue
            coords = geom.get("coordinates")
            pts = _check_positions([coords] if isinstance(coords, list) else [], where, problems)
            gid = _text(props, "gate_id", where, problems)
            sid = _text(props, "site_id", where, problems)
            name = _text(props, "name", where, problems)
            if not pts or gid is None or sid is None or name is None:
                if not pts and not isinstance(coords, list):
                    problems.add(where, "Point needs [lon, lat] coordinates")
                continue
            if gid in gates:
                problems.add(where, f"duplicate gate_id {gid!r} in this file")
                continue
            gates[gid] = Gate(gid, sid, name, pts[0][0], pts[0][1], source=source)
        else:
            problems.add(where, f"property 'kind' must be 'route', 'site' or 'gate', not {kind!r}")
    if not problems.errors and len(routes) != 1:
        problems.add("top level", f"a route file holds exactly one route line, found {len(routes)}")
    for gate in gates.values():
        if gate.site_id not in sites:
            problems.add(
                f"gate {gate.gate_id!r}",
                f"site_id {gate.site_id!r} is not a site of this file (sites: {sorted(sites)})",
            )
    if problems.errors:
        raise GeoConfigError(problems.errors)
    by_role = {role: sid for sid, role in site_roles.items()}
    base = routes[0]
    route = Route(
        base.route_id,
        base.name,
        base.corridor_m,
        base.line,
        origin_site_id=by_role.get("origin"),
        destination_site_id=by_role.get("destination"),
        source=source,
    )
    return RouteFile(route, list(sites.values()), list(gates.values()))


def parse_zone_collection(data: Any, source: str) -> list[Zone]:
    """One zone file's decoded JSON → zones, or `GeoConfigError` listing all problems."""
    problems = _Problems(source)
    zones: dict[str, Zone] = {}
    for index, feat in enumerate(_features(data, problems)):
        props = feat.get("properties") if isinstance(feat, dict) else None
        props = props if isinstance(props, dict) else {}
        where = _where(index, props, "zone_id")
        got = _geometry(feat, where, problems)
        if got is None:
            continue
        gtype, geom = got
        if gtype != "Polygon":
            problems.add(where, f"a zone must be a Polygon, not {gtype}")
            continue
        poly = _polygon(geom, where, problems)
        zid = _text(props, "zone_id", where, problems)
        name = _text(props, "name", where, problems)
        kind = props.get("kind")
        if kind not in ZONE_KINDS:
            problems.add(where, f"property 'kind' must be one of {list(ZONE_KINDS)}, not {kind!r}")
            continue
        max_speed = _number(props, "max_speed_kmh", where, problems, required=False)
        if props.get("max_speed_kmh") is not None and max_speed is None:
            continue
        if poly is None or zid is None or name is None:
            continue
        if zid in zones:
            problems.add(where, f"duplicate zone_id {zid!r} in this file")
            continue
        zones[zid] = Zone(zid, name, cast(ZoneKind, kind), poly, max_speed, source=source)
    if problems.errors:
        raise GeoConfigError(problems.errors)
    return list(zones.values())


def load_route_file(path: Path | str) -> RouteFile:
    """Read one route GeoJSON file."""
    p = Path(path)
    return parse_route_collection(_read_json(p), str(p))


def load_zone_file(path: Path | str) -> list[Zone]:
    """Read one zone GeoJSON file."""
    p = Path(path)
    return parse_zone_collection(_read_json(p), str(p))


def load_all(
    route_paths: Iterable[Path | str], zone_paths: Iterable[Path | str]
) -> tuple[list[RouteFile], list[Zone]]:
    """Read every file, collecting the problems of all of them before raising."""
    errors: list[str] = []
    route_files: list[RouteFile] = []
    zones: list[Zone] = []
    for path in route_paths:
        try:
            route_files.append(load_route_file(path))
        except GeoConfigError as err:
            errors.extend(err.errors)
    for path in zone_paths:
        try:
            zones.extend(load_zone_file(path))
        except GeoConfigError as err:
            errors.extend(err.errors)
    if errors:
        raise GeoConfigError(errors)
    return route_files, zones

"""What the rules consume: fixes (derived from `contract.payloads.Position`) and context."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from contract.payloads import FixKind, Position
from devices.geodesy import M_PER_DEG_LAT
from server.geo import Geography, Route, Zone
from server.rules.profiles import CreditProfile


@dataclass(frozen=True, slots=True)
class Fix:
    """One GNSS epoch as the rules see it."""

    ts: datetime
    lon: float | None
    lat: float | None
    fix: FixKind = "3d"
    speed_kmh: float | None = None
    course_deg: float | None = None
    sats: int | None = None
    hdop: float | None = None
    replayed: bool = False

    @classmethod
    def from_position(cls, p: Position) -> Fix:
        return cls(
            ts=p.ts,
            lon=p.lon,
            lat=p.lat,
            fix=p.fix,
            speed_kmh=p.speed_kmh,
            course_deg=p.course_deg,
            sats=p.sats,
            hdop=p.hdop,
            replayed=p.replayed,
        )

    @property
    def valid(self) -> bool:
        """A position fix (2D or 3D) with coordinates."""
        return self.fix != "none" and self.lon is not None and self.lat is not None

    @property
    def lonlat(self) -> tuple[float, float]:
        if self.lon is None or self.lat is None:
            raise ValueError(f"fix at {self.ts} has no position")
        return (self.lon, self.lat)


def ground_distance_m(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Metres between two (lon, lat) points (equirectangular; fine up to tens of km)."""
    kx = M_PER_DEG_LAT * math.cos(math.radians((a[1] + b[1]) / 2.0))
    return math.hypot((a[0] - b[0]) * kx, (a[1] - b[1]) * M_PER_DEG_LAT)


@dataclass(frozen=True)
class TripContext:
    """What the rules need to know about a trip besides its state."""

    geography: Geography
    route_id: str
    profile: CreditProfile
    trip_id: str = ""
    started_at: datetime | None = None
    time_limit_s: float | None = None
    #: lock id → the lock's secret, to check its reports' MACs (`server.rules.lock_auth`).
    lock_secrets: Mapping[str, bytes] = field(default_factory=dict, repr=False, compare=False)

    route: Route = field(init=False, repr=False, compare=False)
    #: When the trip becomes overdue: start + time limit + the profile's grace (None: never).
    deadline: datetime | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Both are asked on every event: worked out once, here.
        object.__setattr__(self, "route", self.geography.route(self.route_id))
        object.__setattr__(self, "deadline", self._deadline())

    def _deadline(self) -> datetime | None:
        if self.started_at is None or self.time_limit_s is None:
            return None
        return self.started_at + timedelta(seconds=self.time_limit_s + self.profile.overdue_grace_s)


def fix_uncertainty_m(fix: Fix, profile: CreditProfile) -> float:
    """k · HDOP · UERE: how far the true position may lie from the fix (m)."""
    hdop = fix.hdop if fix.hdop is not None else profile.assumed_hdop
    return profile.uncertainty_k * hdop * profile.uere_m


def fix_usable(fix: Fix, profile: CreditProfile) -> bool:
    """Good enough to start or end an alarm: enough satellites and a low enough HDOP."""
    if not fix.valid:
        return False
    if fix.sats is not None and fix.sats < profile.min_sats:
        return False
    hdop = fix.hdop if fix.hdop is not None else profile.assumed_hdop
    return hdop <= profile.max_hdop


class Observation:
    """An accepted fix with the geography around it, each part computed once on demand.

    (Plain lazy attributes: `functools.cached_property` takes a lock on every first
    access in Python 3.11, which costs more than the look-ups themselves.)
    """

    __slots__ = (
        "_distance",
        "_end_site",
        "_zones",
        "ctx",
        "fix",
        "lat",
        "lon",
        "uncertainty_m",
        "usable",
    )

    def __init__(self, fix: Fix, ctx: TripContext) -> None:
        self.fix = fix
        self.ctx = ctx
        self.lon, self.lat = fix.lonlat
        self.usable = fix_usable(fix, ctx.profile)
        self.uncertainty_m = fix_uncertainty_m(fix, ctx.profile)
        self._distance: float | None = None
        self._zones: list[Zone] | None = None
        self._end_site: bool | None = None

    @property
    def corridor_m(self) -> float:
        return self.ctx.route.corridor_m * self.ctx.profile.corridor_factor

    @property
    def distance_m(self) -> float:
        """Metres from the route line."""
        if self._distance is None:
            self._distance = self.ctx.route.distance_m(self.lon, self.lat)
        return self._distance

    @property
    def zones(self) -> list[Zone]:
        if self._zones is None:
            self._zones = self.ctx.geography.zones_at(self.lon, self.lat)
        return self._zones

    @property
    def in_end_site(self) -> bool:
        """Inside the route's origin or destination site."""
        if self._end_site is None:
            route, geo = self.ctx.route, self.ctx.geography
            self._end_site = any(
                sid is not None and geo.inside_site(sid, self.lon, self.lat)
                for sid in (route.origin_site_id, route.destination_site_id)
            )
        return self._end_site

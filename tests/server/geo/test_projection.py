"""`TransverseMercator.forward`, written out for speed, gives the very bits of the series
as a loop over its terms (the form `forward_many` keeps)."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from server.geo.projection import _A_RECT, _ALPHA, _C, TransverseMercator


def _series_by_loop(lon0: float, lon: float, lat: float) -> tuple[float, float]:
    """Krüger's series summed in a loop over its coefficients (northing from the equator)."""
    phi = math.radians(lat)
    dlam = math.radians(lon) - math.radians(lon0)
    s = math.sin(phi)
    t = math.sinh(math.atanh(s) - _C * math.atanh(_C * s))
    xi_p = math.atan2(t, math.cos(dlam))
    eta_p = math.atanh(math.sin(dlam) / math.sqrt(1.0 + t * t))
    x = eta_p
    y = xi_p
    for j, alpha in enumerate(_ALPHA, start=1):
        x += alpha * math.cos(2 * j * xi_p) * math.sinh(2 * j * eta_p)
        y += alpha * math.sin(2 * j * xi_p) * math.cosh(2 * j * eta_p)
    return _A_RECT * x, _A_RECT * y


def _forward_by_loop(proj: TransverseMercator, lon: float, lat: float) -> tuple[float, float]:
    """The reference form of `proj.forward`: northings from the projection's `lat0`."""
    x, y = _series_by_loop(proj.lon0, lon, lat)
    return x, y - _series_by_loop(proj.lon0, proj.lon0, proj.lat0)[1]


_LAT = st.floats(min_value=-80.0, max_value=80.0)
_LON = st.floats(min_value=-180.0, max_value=180.0)
_OFFSET = st.floats(min_value=-5.0, max_value=5.0)


@settings(max_examples=2000, deadline=None)
@given(lon0=_LON, lat0=_LAT, dlon=_OFFSET, dlat=_OFFSET)
def test_forward_gives_the_bits_of_the_series_loop(
    lon0: float, lat0: float, dlon: float, dlat: float
) -> None:
    proj = TransverseMercator(lon0, lat0)
    lat = max(-85.0, min(85.0, lat0 + dlat))
    assert proj.forward(lon0 + dlon, lat) == _forward_by_loop(proj, lon0 + dlon, lat)


def test_forward_is_zero_at_the_origin_and_metric_along_the_meridian() -> None:
    proj = TransverseMercator(116.4, 39.9)
    assert proj.forward(116.4, 39.9) == (0.0, 0.0)
    x, y = proj.forward(116.4, 40.0)
    assert x == 0.0
    assert math.isclose(y, 11_104.0, rel_tol=1e-3)  # 0.1° of latitude near 40° N

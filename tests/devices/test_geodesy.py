"""The one great-circle distance of the project (devices.geodesy)."""

import math

from hypothesis import given
from hypothesis import strategies as st

from devices.geodesy import EARTH_RADIUS_M, M_PER_DEG_LAT, great_circle_m

lat = st.floats(-89.9, 89.9)
lon = st.floats(-180.0, 180.0)


def test_a_degree_along_a_meridian_and_the_equator():
    degree = math.pi * EARTH_RADIUS_M / 180.0
    assert math.isclose(great_circle_m(22.0, 113.0, 23.0, 113.0), degree, rel_tol=1e-12)
    assert math.isclose(great_circle_m(0.0, 10.0, 0.0, 11.0), degree, rel_tol=1e-12)
    # The sphere's degree and WGS-84's mean degree of latitude agree to 0.1 %.
    assert abs(degree - M_PER_DEG_LAT) / M_PER_DEG_LAT < 1e-3


def test_antipodes_are_half_the_circumference():
    assert math.isclose(great_circle_m(0.0, 0.0, 0.0, 180.0), math.pi * EARTH_RADIUS_M)


def test_a_hundred_metres_at_the_gate():
    # 0.0009 degrees of latitude near Guangzhou is about 100 m.
    assert 99.0 < great_circle_m(23.3900, 113.3000, 23.3909, 113.3000) < 101.0


@given(lat, lon, lat, lon)
def test_symmetric_non_negative_and_zero_on_itself(lat1, lon1, lat2, lon2):
    d = great_circle_m(lat1, lon1, lat2, lon2)
    assert d >= 0.0
    assert math.isclose(d, great_circle_m(lat2, lon2, lat1, lon1), abs_tol=1e-6)
    assert great_circle_m(lat1, lon1, lat1, lon1) == 0.0
    assert d <= math.pi * EARTH_RADIUS_M + 1e-6

"""The grid indexes give the same answers as shapely's full geometry operations."""

from __future__ import annotations

import math

import numpy as np
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from shapely.geometry import LineString, Point, box

from server.geo.grid import BoxGrid, SegmentGrid

rng = np.random.default_rng(5)
_heading = np.cumsum(rng.normal(0.0, 0.4, 300))
XS = np.cumsum(np.cos(_heading) * rng.uniform(20, 900, 300))
YS = np.cumsum(np.sin(_heading) * rng.uniform(20, 900, 300))
LINE = LineString(np.c_[XS, YS])
GRID = SegmentGrid(XS.tolist(), YS.tolist(), cell_m=500.0)


@settings(max_examples=300, deadline=None)
@given(i=st.integers(0, 298), t=st.floats(0, 1), ox=st.floats(-900, 900), oy=st.floats(-900, 900))
def test_segment_grid_matches_shapely_within_its_reach(
    i: int, t: float, ox: float, oy: float
) -> None:
    x = XS[i] + t * (XS[i + 1] - XS[i]) + ox
    y = YS[i] + t * (YS[i + 1] - YS[i]) + oy
    exact = LINE.distance(Point(x, y))
    got = GRID.distance(float(x), float(y))
    if exact <= 500.0:
        assert got is not None
        assert math.isclose(got, exact, abs_tol=1e-6)
    else:
        assert got is None


def test_box_grid_matches_strtree() -> None:
    r = np.random.default_rng(9)
    geoms = [
        box(x, y, x + w, y + w)
        for x, y, w in zip(
            r.uniform(110, 112, 500),
            r.uniform(22, 24, 500),
            r.uniform(0.001, 0.3, 500),
            strict=True,
        )
    ]
    geoms.append(box(100, 10, 130, 40))  # a huge one, kept aside
    grid = BoxGrid(geoms, cell_deg=0.05, max_cells=2_500)
    tree = shapely.STRtree(geoms)
    for x, y in zip(r.uniform(109.9, 112.3, 400), r.uniform(21.9, 24.3, 400), strict=True):
        expected = sorted(int(i) for i in tree.query(Point(x, y), predicate="intersects"))
        assert sorted(grid.containing(float(x), float(y))) == expected

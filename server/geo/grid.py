"""Uniform-grid indexes for the per-fix hot path, free of per-point shapely objects.

Creating a shapely `Point` for every fix costs more than the look-up it serves, so the
hot path uses plain coordinates: a grid of segments per route (nearest distance in pure
Python) and a grid of zone bounding boxes (then `shapely.intersects_xy` on the prepared
candidates).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

#: One segment: (ax, ay, dx, dy, squared length).
Segment = tuple[float, float, float, float, float]


class SegmentGrid:
    """Segments of a polyline (metres) by grid cell, for distances up to `cell_m`.

    Each segment is filed under every cell its bounding box, grown by `cell_m`, touches;
    so every segment within `cell_m` of a point is filed under the point's cell and the
    smallest candidate distance is exact whenever it is ≤ `cell_m`.
    """

    __slots__ = ("_cells", "cell_m")

    def __init__(self, xs: Sequence[float], ys: Sequence[float], cell_m: float = 500.0) -> None:
        self.cell_m = cell_m
        cells: defaultdict[tuple[int, int], list[Segment]] = defaultdict(list)
        for i in range(len(xs) - 1):
            ax, ay, bx, by = float(xs[i]), float(ys[i]), float(xs[i + 1]), float(ys[i + 1])
            dx, dy = bx - ax, by - ay
            seg: Segment = (ax, ay, dx, dy, dx * dx + dy * dy)
            i0 = math.floor((min(ax, bx) - cell_m) / cell_m)
            i1 = math.floor((max(ax, bx) + cell_m) / cell_m)
            j0 = math.floor((min(ay, by) - cell_m) / cell_m)
            j1 = math.floor((max(ay, by) + cell_m) / cell_m)
            for ci in range(i0, i1 + 1):
                for cj in range(j0, j1 + 1):
                    cells[(ci, cj)].append(seg)
        self._cells: dict[tuple[int, int], tuple[Segment, ...]] = {
            k: tuple(v) for k, v in cells.items()
        }

    def distance(self, x: float, y: float) -> float | None:
        """Distance to the polyline when ≤ `cell_m`, else None (ask the full geometry)."""
        cands = self._cells.get((math.floor(x / self.cell_m), math.floor(y / self.cell_m)))
        if not cands:
            return None
        best = math.inf
        for ax, ay, dx, dy, l2 in cands:
            px, py = x - ax, y - ay
            t = (px * dx + py * dy) / l2 if l2 > 0.0 else 0.0
            if t < 0.0:
                t = 0.0
            elif t > 1.0:
                t = 1.0
            ex, ey = px - t * dx, py - t * dy
            d2 = ex * ex + ey * ey
            if d2 < best:
                best = d2
        d = math.sqrt(best)
        return d if d <= self.cell_m else None


class BoxGrid:
    """Geometries (lon/lat) by grid cell of their bounding box; huge ones kept aside."""

    __slots__ = ("_big", "_cells", "_geoms", "cell_deg")

    def __init__(
        self, geoms: Sequence[BaseGeometry], cell_deg: float = 0.05, max_cells: int = 2_500
    ) -> None:
        self.cell_deg = cell_deg
        self._geoms = np.array(geoms, dtype=object)
        for g in geoms:
            shapely.prepare(g)
        cells: defaultdict[tuple[int, int], list[int]] = defaultdict(list)
        big: list[int] = []
        for n, g in enumerate(geoms):
            xmin, ymin, xmax, ymax = g.bounds
            i0, i1 = math.floor(xmin / cell_deg), math.floor(xmax / cell_deg)
            j0, j1 = math.floor(ymin / cell_deg), math.floor(ymax / cell_deg)
            if (i1 - i0 + 1) * (j1 - j0 + 1) > max_cells:
                big.append(n)
                continue
            for ci in range(i0, i1 + 1):
                for cj in range(j0, j1 + 1):
                    cells[(ci, cj)].append(n)
        self._cells = {k: np.array(v, dtype=np.intp) for k, v in cells.items()}
        self._big = np.array(big, dtype=np.intp)

    def containing(self, x: float, y: float) -> list[int]:
        """Indices of the geometries that contain or touch (x, y)."""
        cands = self._cells.get((math.floor(x / self.cell_deg), math.floor(y / self.cell_deg)))
        if len(self._big):
            cands = self._big if cands is None else np.concatenate([cands, self._big])
        if cands is None or not len(cands):
            return []
        hit = shapely.intersects_xy(self._geoms[cands], x, y)
        return [int(i) for i in cands[hit]]

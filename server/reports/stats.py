"""The arithmetic of the reports: percentiles, summaries and histogram buckets (pure)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

#: Bucket widths (minutes) a chosen histogram uses: round numbers an officer reads easily.
NICE_WIDTHS_MIN: Final = (1, 2, 5, 10, 15, 20, 30, 60, 90, 120, 180, 240, 360, 480, 720, 1440)
#: At most this many buckets when the width is chosen automatically.
TARGET_BUCKETS: Final = 12
#: At most this many buckets however the width was chosen.
MAX_BUCKETS: Final = 200


def percentile(ordered: Sequence[float], q: float) -> float:
    """The q-quantile (0 ≤ q ≤ 1) of ascending `ordered` values, linear between the closest
    ranks: Hyndman & Fan (1996) definition 7, as numpy's default and PostgreSQL's
    `percentile_cont` compute it."""
    if not ordered:
        raise ValueError("percentile of no values")
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile {q} outside [0, 1]")
    h = (len(ordered) - 1) * q
    lo = math.floor(h)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (h - lo) * (ordered[hi] - ordered[lo])


@dataclass(frozen=True, slots=True)
class Summary:
    count: int
    min: float
    p50: float
    p90: float
    max: float
    mean: float


def summarise(values: Sequence[float]) -> Summary | None:
    """Count, min, median, 90th percentile, max and mean; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return Summary(
        count=len(ordered),
        min=ordered[0],
        p50=percentile(ordered, 0.5),
        p90=percentile(ordered, 0.9),
        max=ordered[-1],
        mean=math.fsum(ordered) / len(ordered),
    )


@dataclass(frozen=True, slots=True)
class Buckets:
    """Equal buckets `[first + i·width, first + (i+1)·width)` for i in range(n)."""

    width: float
    first: float
    n: int

    def edges(self) -> list[tuple[float, float]]:
        return [
            (self.first + i * self.width, self.first + (i + 1) * self.width) for i in range(self.n)
        ]

    def counts(self, values: Sequence[float]) -> list[int]:
        """How many of `values` fall in each bucket (values outside are not counted)."""
        out = [0] * self.n
        for value in values:
            i = math.floor((value - self.first) / self.width)
            if 0 <= i < self.n:
                out[i] += 1
        return out


def buckets_for(lo: float, hi: float, width: float) -> Buckets:
    """Buckets of `width` aligned on its multiples, covering `lo`..`hi` (a value equal to
    an edge goes into the bucket it starts)."""
    if width <= 0:
        raise ValueError("bucket width must be positive")
    first_i = math.floor(lo / width)
    last_i = math.floor(hi / width)
    return Buckets(width, first_i * width, last_i - first_i + 1)


def nice_width(lo: float, hi: float, target: int = TARGET_BUCKETS) -> int:
    """The smallest width of NICE_WIDTHS_MIN giving at most `target` buckets over lo..hi,
    else whole days."""
    for width in NICE_WIDTHS_MIN:
        if buckets_for(lo, hi, width).n <= target:
            return width
    days = 1
    while buckets_for(lo, hi, 1440 * days).n > target:
        days *= 2
    return 1440 * days

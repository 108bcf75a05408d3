"""Distances on the Earth, for every part of the project: one radius, one formula.

Coordinates are WGS-84 degrees. Distances of the truck agent's reporting policy, the
lock's area check, the simulated receiver's local frame and the server's local
approximations all come from here (the server's corridor geometry uses its own
ellipsoidal projection, `server.geo.projection`). Pure functions, no I/O.
"""

from __future__ import annotations

import math
from typing import Final

#: The Earth's mean radius (IUGG R1 = (2a + b) / 3 of WGS-84), metres.
EARTH_RADIUS_M: Final = 6_371_008.8
#: The mean length of one degree of latitude on WGS-84, metres; one degree of longitude
#: is this times the cosine of the latitude (a local equirectangular approximation).
M_PER_DEG_LAT: Final = 111_132.954


def great_circle_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance between two points on the mean sphere (haversine), metres."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))

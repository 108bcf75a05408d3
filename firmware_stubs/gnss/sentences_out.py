"""NMEA sentences a simulated GPS+BeiDou receiver sends for one epoch."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime

from devices.gnss.codec import encode_sentence

KNOT_MPS = 1852.0 / 3600.0


@dataclass(frozen=True)
class EpochState:
    time: datetime
    lat: float
    lon: float
    alt_m: float
    speed_mps: float
    course_deg: float
    hdop: float
    fix: bool
    gps_prns: tuple[int, ...]
    bds_prns: tuple[int, ...]


def _lat(value: float) -> tuple[str, str]:
    deg = int(abs(value))
    minutes = (abs(value) - deg) * 60.0
    return f"{deg:02d}{minutes:010.7f}", "N" if value >= 0 else "S"


def _lon(value: float) -> tuple[str, str]:
    deg = int(abs(value))
    minutes = (abs(value) - deg) * 60.0
    return f"{deg:03d}{minutes:010.7f}", "E" if value >= 0 else "W"


def _hms(t: datetime) -> str:
    return t.strftime("%H%M%S.") + f"{t.microsecond // 10000:02d}"


def epoch_sentences(
    state: EpochState, talker: str, rng: random.Random, bds_talker: str = "BD"
) -> list[str]:
    """GGA, RMC, VTG (talker `talker`, GN = combined), GSA (one per system, NMEA 4.10
    system ids) and GSV for one epoch: GPS satellites as `GPGSV`, BeiDou ones as
    `BDGSV` (the Chinese convention, default) or `GBGSV` (NMEA 4.11)."""
    hms = _hms(state.time)
    out: list[str] = []
    if state.fix:
        lat, ns = _lat(state.lat)
        lon, ew = _lon(state.lon)
        sats = len(state.gps_prns) + len(state.bds_prns)
        out.append(
            f"{talker}GGA,{hms},{lat},{ns},{lon},{ew},1,{sats:02d},{state.hdop:.2f},"
            f"{state.alt_m:.1f},M,-3.2,M,,"
        )
        knots = state.speed_mps / KNOT_MPS
        out.append(
            f"{talker}RMC,{hms},A,{lat},{ns},{lon},{ew},{knots:.3f},{state.course_deg:.2f},"
            f"{state.time:%d%m%y},,,A,V"
        )
        # course true (no magnetic model), speed in knots and km/h, FAA mode
        out.append(
            f"{talker}VTG,{state.course_deg:.2f},T,,M,{knots:.3f},N,{state.speed_mps * 3.6:.3f},K,A"
        )
        gsa_mode = "3"
    else:
        out.append(f"{talker}GGA,{hms},,,,,0,00,99.99,,,,,,")
        out.append(f"{talker}RMC,{hms},V,,,,,,,{state.time:%d%m%y},,,N,V")
        out.append(f"{talker}VTG,,T,,M,,N,,K,N")
        gsa_mode = "1"
    pdop = state.hdop * 1.6
    vdop = state.hdop * 1.3
    for system_id, prns in ((1, state.gps_prns), (4, state.bds_prns)):
        used = list(prns if state.fix else ())[:12]
        cells = ",".join([str(p) for p in used] + [""] * (12 - len(used)))
        dops = f"{pdop:.2f},{state.hdop:.2f},{vdop:.2f}" if state.fix else "99.99,99.99,99.99"
        out.append(f"{talker}GSA,A,{gsa_mode},{cells},{dops},{system_id}")
    for gsv_talker, prns in (("GP", state.gps_prns), (bds_talker, state.bds_prns)):
        view = list(prns)
        parts = max(1, (len(view) + 3) // 4)
        for part in range(parts):
            chunk = view[part * 4 : part * 4 + 4]
            cells = "".join(
                f",{p},{rng.randint(10, 85)},{rng.randint(0, 359):03d},{rng.randint(25, 48)}"
                for p in chunk
            )
            out.append(f"{gsv_talker}GSV,{parts},{part + 1},{len(view):02d}{cells}")
    return [encode_sentence(body) for body in out]

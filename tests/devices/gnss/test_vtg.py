"""VTG (course and speed over ground): its fields, its empty fields, and how it merges
into the fix of its epoch."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from devices.gnss.codec import KNOT_MPS, GnssFix, NmeaStreamDecoder, encode_sentence


def decode(*bodies: str) -> tuple[list[GnssFix], NmeaStreamDecoder]:
    dec = NmeaStreamDecoder()
    fixes = dec.feed("".join(encode_sentence(b) for b in bodies).encode())
    return fixes + dec.flush(), dec


def gga(second: int) -> str:
    return f"GPGGA,1200{second:02d}.00,4807.0380,N,01131.0000,E,1,08,0.9,545.4,M,46.9,M,,"


def rmc(second: int, knots: str = "", course: str = "") -> str:
    return f"GPRMC,1200{second:02d}.00,A,4807.0380,N,01131.0000,E,{knots},{course},230394,,,A"


def one_epoch_with(vtg: str) -> GnssFix:
    """GGA + VTG + GSA for three seconds (the VTG in each); the fix of the second one."""
    bodies: list[str] = []
    for second in range(3):
        bodies += [gga(second), vtg, "GPGSA,A,3,04,05,09,12,24,,,,,,,,2.5,1.3,2.1"]
    fixes, dec = decode(*bodies)
    assert dec.stats.malformed == 0
    assert dec.stats.unknown == 0
    assert len(fixes) == 3
    return fixes[1]


@pytest.mark.parametrize(
    ("vtg", "course", "speed_mps"),
    [
        # NMEA 2.3+: course true, T, course magnetic, M, knots, N, km/h, K, mode
        ("GPVTG,054.7,T,034.4,M,005.5,N,010.2,K,A", 54.7, 10.2 / 3.6),
        ("GPVTG,054.7,T,034.4,M,005.5,N,010.2,K,D", 54.7, 10.2 / 3.6),
        # NMEA 2.0 (no mode field)
        ("GPVTG,054.7,T,034.4,M,005.5,N,010.2,K", 54.7, 10.2 / 3.6),
        # km/h missing: the knots are used
        ("GPVTG,054.7,T,,M,005.5,N,,K,A", 54.7, 5.5 * KNOT_MPS),
        # only the magnetic course: it is not taken for the true course
        ("GPVTG,,T,034.4,M,005.5,N,010.2,K,A", None, 10.2 / 3.6),
        # standing still: course empty, speed zero
        ("GPVTG,,T,,M,0.000,N,0.000,K,A", None, 0.0),
    ],
)
def test_vtg_fields_give_course_true_and_speed(
    vtg: str, course: float | None, speed_mps: float
) -> None:
    fix = one_epoch_with(vtg)
    assert fix.mode == 3
    assert fix.course_deg == course
    assert fix.speed_mps is not None
    assert abs(fix.speed_mps - speed_mps) < 1e-9


@pytest.mark.parametrize(
    "vtg",
    [
        "GPVTG,,T,,M,,N,,K,N",  # a receiver without fix: every field empty, mode N
        "GPVTG,,,,,,,,,",  # nothing at all
        "GPVTG,054.7,T,034.4,M,005.5,N,010.2,K,N",  # values, but the mode says not valid
        "GPVTG",  # no fields
    ],
)
def test_vtg_without_valid_data_leaves_speed_and_course_unknown(vtg: str) -> None:
    fix = one_epoch_with(vtg)
    assert fix.mode == 3  # the position of the epoch is not affected
    assert fix.lat is not None
    assert fix.speed_mps is None
    assert fix.course_deg is None


def test_vtg_merges_into_its_own_epoch() -> None:
    # RMC without speed and course (some receivers leave them to VTG), then VTG;
    # each second a different speed: every fix carries the VTG of its own second.
    bodies: list[str] = []
    for second in range(4):
        bodies += [
            rmc(second),
            f"GPVTG,{10 * second:05.1f},T,,M,{second * 5.4:05.1f},N,{second * 10:05.1f},K,A",
            gga(second),
        ]
    fixes, dec = decode(*bodies)
    assert dec.stats.sentences == 12
    assert [f.time for f in fixes] == [
        datetime(1994, 3, 23, 12, 0, s, tzinfo=UTC) for s in range(4)
    ]
    assert [f.course_deg for f in fixes] == [0.0, 10.0, 20.0, 30.0]
    # km/h is the finer of VTG's two speeds (0.1 km/h against 0.1 kn): it is used
    speeds = [f.speed_mps for f in fixes]
    assert all(s is not None for s in speeds)
    assert [round(s * 3.6, 6) for s in speeds if s is not None] == [0.0, 10.0, 20.0, 30.0]


def test_rmc_speed_and_course_come_first_vtg_fills_only_what_is_missing() -> None:
    # RMC has the speed but no course; the VTG after it has both (rounded
    # differently): the RMC's speed stays, the course comes from VTG.
    bodies: list[str] = []
    for second in range(3):
        bodies += [rmc(second, knots="5.50"), "GPVTG,054.7,T,,M,005.6,N,010.4,K,A", gga(second)]
    fixes, _ = decode(*bodies)
    assert len(fixes) == 3
    for fix in fixes:
        assert fix.speed_mps is not None
        assert abs(fix.speed_mps - 5.5 * KNOT_MPS) < 1e-9
        assert fix.course_deg == 54.7


def test_vtg_of_the_previous_epoch_does_not_leak_into_the_next() -> None:
    # Second 0 has a VTG, second 1 none: second 1 has no speed.
    bodies = [
        rmc(0),
        "GPVTG,054.7,T,,M,005.5,N,010.2,K,A",
        gga(0),
        rmc(1),
        gga(1),
        rmc(2),
        gga(2),
    ]
    fixes, _ = decode(*bodies)
    assert [f.speed_mps is not None for f in fixes] == [True, False, False]
    assert [f.course_deg for f in fixes] == [54.7, None, None]

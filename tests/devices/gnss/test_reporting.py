"""gpsd's reporting rules the decoder reproduces (docs/gnss.md, "How epochs become fixes").

Each test builds a small stream that exercises one rule and checks which epochs give
a fix, with which position; and the `decode` command line's JSON, receiver verdict
included.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from devices.gnss.codec import GnssFix, NmeaStreamDecoder, encode_sentence


def decode(*bodies: str) -> list[GnssFix]:
    dec = NmeaStreamDecoder()
    data = "".join(encode_sentence(b) for b in bodies).encode()
    return dec.feed(data) + dec.flush()


def seconds(fixes: list[GnssFix]) -> list[int]:
    return [f.time.second for f in fixes if f.mode >= 2 and f.time is not None]


# ----------------------------------------------------------------- time before date


def test_gga_times_before_any_date_make_gga_a_cycle_ender() -> None:
    # A cold start (TR737A+ style): RMC V with a date, GGA, ...; GGA's time registers
    # before any date is known, so GGA (last before each new time) ends the cycle.
    # The log ends after a GGA whose RMC never comes: that epoch is reported.
    bodies = [
        "GPRMC,071732.929,V,8960.0000,N,00000.0000,E,0.00,0.00,111111,,,N",
        "GPGGA,071733.929,8960.0000,N,00000.0000,E,0,0,,137.0,M,13.0,M,,",
        "GPRMC,071733.929,V,8960.0000,N,00000.0000,E,0.00,0.00,111111,,,N",
    ]
    for t in range(36, 40):
        bodies += [
            f"GPGGA,0717{t}.000,4404.1{t}0,N,12118.8445,W,1,4,5.21,1134.4,M,-19.6,M,,",
            "GPGSA,A,3,23,13,32,20,,,,,,,,,5.30,5.21,0.98",
            f"GPRMC,0717{t}.000,A,4404.1{t}0,N,12118.8445,W,0.20,0.00,111111,,,A",
        ]
    bodies.append("GPGGA,071740.000,4404.1400,N,12118.8445,W,1,4,5.21,1134.4,M,-19.6,M,,")
    fixes = decode(*bodies)
    assert seconds(fixes)[-1] == 40
    assert abs((fixes[-1].lat or 0) - (44 + 4.14 / 60)) < 1e-9


# ------------------------------------------------------------- after the cycle ender


def test_a_gsa_after_the_cycle_ender_reports_again() -> None:
    # GGA ends each cycle but says "no fix" (0 satellites, as a Garmin 25LP does);
    # the GSA after it says 2D: gpsd reports again on the GSA, with a fix.
    bodies = []
    for t in range(4):
        bodies += [
            f"GPRMC,12032{t},A,4221.3871,N,01322.0800,E,000.0,000.0,150305,001.4,E",
            f"GPGGA,12032{t},4221.3871,N,01322.0800,E,1,00,3.1,746.1,M,44.2,M,,",
            "GPGSA,A,2,01,03,,14,,,,,,,,,3.3,3.1,1.0",
        ]
    fixes = decode(*bodies)
    assert seconds(fixes) == [20, 21, 22, 23]


def test_a_timed_sentence_that_is_no_ender_ends_the_reports_after_the_ender() -> None:
    # GGA "no fix" (0 satellites), an RMC A without a date (untimed: its time does not
    # register) and a GSA saying 2D each second: GGA is the ender, the GSA after it
    # reports a fix. Once the RMC has a date its time registers: it is timed and not
    # (yet) an ender, so the GSA after it no longer reports, and that epoch has no fix.
    def second(t: int, date: str) -> list[str]:
        return [
            f"GPGGA,12032{t},4221.3871,N,01322.0800,E,1,00,3.1,746.1,M,44.2,M,,",
            f"GPRMC,12032{t},A,4221.3871,N,01322.0800,E,000.0,000.0,{date},001.4,E",
            "GPGSA,A,2,01,03,,14,,,,,,,,,3.3,3.1,1.0",
        ]

    fixes = decode(*second(0, ""), *second(1, ""), *second(2, ""), *second(3, "150305"))
    assert [f.mode for f in fixes] == [2, 2, 2, 1]
    assert [f.time.second for f in fixes if f.time is not None] == [23]


# ----------------------------------------------------------------------------- AIS


def _armour(bits: str) -> tuple[str, int]:
    fill = -len(bits) % 6
    bits += "0" * fill
    chars = []
    for i in range(0, len(bits), 6):
        value = int(bits[i : i + 6], 2)
        chars.append(chr(value + 48 if value < 40 else value + 56))
    return "".join(chars), fill


def ais(message_type: int, mmsi: int, part: int = 0, channel: str = "B") -> str:
    """One AIVDM sentence body: message 24 part A (160 bits) or B (168), or a
    168-bit message of another type."""
    bits = f"{message_type:06b}00{mmsi:030b}"
    if message_type == 24:
        bits += f"{part:02b}"
        bits += "0" * ((160 if part == 0 else 168) - len(bits))
    else:
        bits += "0" * (168 - len(bits))
    payload, fill = _armour(bits)
    return f"!AIVDM,1,1,,{channel},{payload},{fill}"


def gll_cycles(inserts: dict[int, list[str]]) -> list[str]:
    """RMC, GGA, GLL each second (GLL ends the cycle), AIS sentences inserted before
    the GLL of the given seconds."""
    bodies = []
    for t in range(8):
        bodies += [
            f"GPRMC,2140{t:02d}.00,A,5250.538{t},N,00542.34917,E,0.017,,070420,,,A",
            f"GPGGA,2140{t:02d}.00,5250.538{t},N,00542.34917,E,1,09,1.02,-3.3,M,45.8,M,,",
            *inserts.get(t, []),
            f"GPGLL,5250.538{t},N,00542.34917,E,2140{t:02d}.00,A,A",
        ]
    return bodies


def test_ais_message_24_part_a_drops_the_next_report() -> None:
    fixes = decode(*gll_cycles({3: [ais(24, 211736530, 0)]}))
    assert seconds(fixes) == [0, 1, 2, 4, 5, 6, 7]


def test_ais_message_after_the_half_restores_the_report() -> None:
    fixes = decode(*gll_cycles({3: [ais(24, 211736530, 0), ais(1, 244710041)]}))
    assert seconds(fixes) == [0, 1, 2, 3, 4, 5, 6, 7]


def test_ais_part_b_that_pairs_with_its_part_a_is_whole() -> None:
    inserts = {2: [ais(1, 244710041)], 3: [ais(24, 244670701, 0), ais(24, 244670701, 1)]}
    assert seconds(decode(*gll_cycles(inserts))) == [0, 1, 2, 3, 4, 5, 6, 7]
    # ... on the same radio channel only, and a part B alone is a half too
    inserts = {3: [ais(24, 244670701, 0, "A"), ais(24, 244670701, 1, "B")], 5: [ais(24, 1, 1)]}
    assert seconds(decode(*gll_cycles(inserts))) == [0, 1, 2, 4, 6, 7]


def test_an_ais_half_before_a_cycle_start_still_drops_its_report() -> None:
    # gpsd holds the AIS change until its next report, across the start of a cycle.
    bodies = gll_cycles({})
    bodies.insert(3 * 3, ais(24, 211736530, 0))  # before the RMC of second 3
    assert seconds(decode(*bodies)) == [0, 1, 2, 4, 5, 6, 7]


def test_malformed_ais_changes_nothing() -> None:
    broken = [
        "!AIVDM,1,1,,B,H3`lOl1<4iE@T0000000000~~0,2",  # characters outside the armour
        "!AIVDM,2,2,,B,1@0000000000000,2",  # a second fragment without its first
        "!AIVDM,x,1,,B,H3`lOl1,0",
        "!AIVDM,1,1",
    ]
    assert seconds(decode(*gll_cycles({3: broken}))) == [0, 1, 2, 3, 4, 5, 6, 7]


# ------------------------------------------------------------------- command line


def test_decode_cli_reports_the_receiver_verdict(tmp_path: Path) -> None:
    log = tmp_path / "cold.log"
    lines = [
        "# a receiver's cold start: a guessed position, then a fix",
        *(
            encode_sentence(b).strip()
            for b in [
                "GPGGA,100000,2232.1234,N,11403.5678,E,0,04,,35.2,M,-3.0,M,,",
                "GPRMC,100000,V,2232.1234,N,11403.5678,E,,,231126,,,N",
                "GPGGA,100001,2232.2000,N,11403.5678,E,1,08,0.9,35.2,M,-3.0,M,,",
                "GPRMC,100001,A,2232.2000,N,11403.5678,E,1.0,90.0,231126,,,A",
                "GPGGA,100002,2232.3000,N,11403.5678,E,1,08,0.9,35.2,M,-3.0,M,,",
                "GPRMC,100002,A,2232.3000,N,11403.5678,E,1.0,90.0,231126,,,A",
            ]
        ),
    ]
    log.write_text("\n".join(lines) + "\n")
    run = subprocess.run(
        [sys.executable, "-m", "devices.gnss", "decode", str(log)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    rows = [json.loads(line) for line in run.stdout.splitlines()]
    assert [(r["mode"], r["receiver_valid"]) for r in rows] == [(1, False), (3, True), (3, True)]
    assert rows[0]["lat"] is None and rows[0]["lon"] is None  # the guess is withheld
    assert abs(rows[1]["lat"] - (22 + 32.2 / 60)) < 1e-9
    assert {"time", "lat", "lon", "alt_m", "speed_mps", "course_deg", "mode"} <= set(rows[0])


def test_an_rmc_v_before_its_gga_marks_its_own_epoch_invalid() -> None:
    # RMC comes first in each second and RMC V registers no time, so it arrives while
    # the previous epoch is still open: its verdict goes to the epoch of its own time.
    def second(t: int, valid: bool) -> list[str]:
        quality, status = ("1", "A") if valid else ("0", "V")
        return [
            f"GPRMC,08000{t},{status},2232.1234,N,11403.5678,E,1.0,90.0,231126,,,A",
            f"GPGGA,08000{t},2232.1234,N,11403.5678,E,{quality},08,0.9,35.2,M,-3.0,M,,",
        ]

    fixes = decode(*second(0, True), *second(1, False), *second(2, True), *second(3, False))
    assert [f.mode for f in fixes] == [3, 1, 3, 1]
    assert [f.receiver_valid for f in fixes] == [True, False, True, False]

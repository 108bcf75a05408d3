"""NMEA codec: checksums, talkers, empty fields, binary skipping, epochs, round trips."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from devices.gnss.codec import GnssFix, NmeaStreamDecoder, encode_sentence
from tests.devices.gnss.binary_frames import ubx_frame


def decode(data: bytes) -> tuple[list[GnssFix], NmeaStreamDecoder]:
    dec = NmeaStreamDecoder()
    fixes = dec.feed(data) + dec.flush()
    return fixes, dec


EPOCH = (
    encode_sentence("GNRMC,081502.25,A,2232.1234,N,11403.5678,E,10.0,90.0,231126,,,A,V")
    + encode_sentence("GNGGA,081502.25,2232.1234,N,11403.5678,E,1,14,0.9,35.2,M,-3.0,M,,")
    + encode_sentence("GNGSA,A,3,01,02,03,04,05,,,,,,,,1.5,0.9,1.2,1")
    + encode_sentence("GNGSA,A,3,201,202,203,,,,,,,,,,1.5,0.9,1.2,4")
    + encode_sentence("BDGSV,1,1,03,01,40,120,40,02,30,200,35,03,10,300,30")
).encode()


def test_epoch_merges_into_one_fix() -> None:
    fixes, dec = decode(EPOCH)
    assert len(fixes) == 1
    fix = fixes[0]
    assert fix.lat is not None
    assert fix.lon is not None
    assert fix.speed_mps is not None
    assert fix.time == datetime(2026, 11, 23, 8, 15, 2, 250000, tzinfo=UTC)
    assert abs(fix.lat - (22 + 32.1234 / 60)) < 1e-9
    assert abs(fix.lon - (114 + 3.5678 / 60)) < 1e-9
    assert fix.alt_m == 35.2
    assert fix.mode == 3
    assert fix.sats_used == 14
    assert fix.hdop == 0.9
    assert abs(fix.speed_mps - 10 * 1852 / 3600) < 1e-9
    assert fix.course_deg == 90.0
    assert fix.sats_by_system == {"GPS": 5, "BDS": 3}
    assert fix.systems == ("GPS", "BDS")
    assert dec.stats.sentences == 5


def test_chunked_feed_gives_the_same_fixes() -> None:
    data = EPOCH * 1 + EPOCH.replace(b"081502.25", b"081503.25")
    # checksums change with the time; re-encode the second epoch properly
    second = b"".join(
        encode_sentence(line[1:-3].decode().replace("081502.25", "081503.25")).encode()
        for line in EPOCH.splitlines()
    )
    data = EPOCH + second
    whole, _ = decode(data)
    dec = NmeaStreamDecoder()
    pieces = []
    for i in range(len(data)):
        pieces += dec.feed(data[i : i + 1])
    pieces += dec.flush()
    assert whole == pieces
    assert len(whole) == 2


def test_missing_and_bad_checksums_are_rejected_and_counted() -> None:
    good = encode_sentence("GPGGA,120000,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,")
    no_sum = good[: good.index("*")] + "\r\n"
    bad = good[:-4] + ("00" if good[-4:-2] != "00" else "01") + "\r\n"
    fixes, dec = decode((no_sum + bad).encode())
    assert fixes == []
    assert dec.stats.missing_checksum == 1
    assert dec.stats.bad_checksum == 1


def test_empty_fields_without_fix() -> None:
    data = (
        encode_sentence("GPRMC,074150.799,V,,,,,,,250215,,,N")
        + encode_sentence("GPGGA,074150.799,,,,,0,00,,,M,0.0,M,,0000")
    ).encode()
    fixes, _ = decode(data)
    assert len(fixes) == 1
    assert fixes[0].mode == 1
    assert fixes[0].lat is None
    assert fixes[0].time == datetime(2015, 2, 25, 7, 41, 50, 799000, tzinfo=UTC)


def _shifted(epoch: bytes, old: str, new: str) -> bytes:
    return b"".join(
        encode_sentence(line[1:-3].decode().replace(old, new)).encode()
        for line in epoch.splitlines()
    )


EPOCH2 = _shifted(EPOCH, "081502.25", "081503.25")


def test_binary_between_sentences_is_skipped() -> None:
    # a UBX NAV-PVT-sized packet with a valid checksum, then noise
    ubx = ubx_frame(0x01, 0x07, bytes(range(92))) + bytes(range(256)) + b"$\x00\x01"
    fixes, dec = decode(ubx + EPOCH + ubx + EPOCH2 + ubx)
    # With u-blox binary in the stream gpsd (u-blox driver) reports from the second
    # epoch on, once it knows the cycle's last sentence: so do we.
    assert [f.time for f in fixes] == [datetime(2026, 11, 23, 8, 15, 3, 250000, tzinfo=UTC)]
    assert fixes[0].lat is not None
    # bytes 0x24.. of the packet look like the start of a sentence: rejected, not fixes
    assert dec.stats.binary_bytes_skipped > 500
    assert dec.stats.sentences == 10


def test_nmea_only_stream_reports_its_first_epoch() -> None:
    fixes, _ = decode(EPOCH + EPOCH2)
    assert len(fixes) == 2
    assert all(f.mode == 3 for f in fixes)


def test_long_sentence_and_other_talkers() -> None:
    long_body = "GAGSA,A,3," + ",".join(str(301 + i) for i in range(30)) + ",1.0,0.8,0.6,3"
    assert len(long_body) > 82
    data = (
        encode_sentence("GLGNS,101010.00,5957.0062,N,01100.6429,E,NAN,08,1.3,168.9,39.5,,,V")
        + encode_sentence(long_body)
        + encode_sentence("GIGLL,5957.0062,N,01100.6429,E,101010.00,A,A")
        + encode_sentence("GQZDA,101010.00,31,07,2022,00,00")
    ).encode()
    fixes, dec = decode(data)
    assert dec.stats.malformed == 0
    assert len(fixes) == 1
    fix = fixes[0]
    assert fix.mode == 3
    assert fix.sats_by_system["Galileo"] == 12
    assert fix.time == datetime(2022, 7, 31, 10, 10, 10, tzinfo=UTC)
    assert {"GLONASS", "Galileo", "NavIC"} <= set(fix.systems)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600), st.integers(min_value=1, max_value=64))
def test_arbitrary_bytes_never_raise(data: bytes, chunk: int) -> None:
    dec = NmeaStreamDecoder()
    for i in range(0, len(data), chunk):
        dec.feed(data[i : i + chunk])
    dec.flush()
    assert dec.stats.sentences >= 0


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.binary(max_size=200))
def test_noise_around_an_epoch_keeps_the_fix(before: bytes, after: bytes) -> None:
    fixes, _ = decode(before + b"\r\n" + EPOCH + b"\r\n" + EPOCH2 + b"\r\n" + after + b"\r\n")
    good = [f for f in fixes if f.mode == 3 and f.alt_m == 35.2]
    assert good
    assert good[-1].time == datetime(2026, 11, 23, 8, 15, 3, 250000, tzinfo=UTC)


@settings(max_examples=300, deadline=None)
@given(
    lat=st.floats(min_value=-89.99, max_value=89.99),
    lon=st.floats(min_value=-179.99, max_value=179.99),
    alt=st.floats(min_value=-400, max_value=9000),
    knots=st.floats(min_value=0, max_value=200),
    course=st.floats(min_value=0, max_value=359.9),
    stamp=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2079, 12, 31)),
    talker=st.sampled_from(["GP", "BD", "GB", "GN", "GL", "GA", "GQ", "GI"]),
)
def test_round_trip_with_the_stub_encoder(lat, lon, alt, knots, course, stamp, talker) -> None:
    from firmware_stubs.gnss.sentences_out import _lat, _lon

    la, ns = _lat(lat)
    lo, ew = _lon(lon)
    hms = stamp.strftime("%H%M%S.") + f"{stamp.microsecond // 10000:02d}"
    data = (
        encode_sentence(
            f"{talker}RMC,{hms},A,{la},{ns},{lo},{ew},{knots:.3f},{course:.2f},{stamp:%d%m%y},,,A"
        )
        + encode_sentence(f"{talker}GGA,{hms},{la},{ns},{lo},{ew},1,10,1.0,{alt:.1f},M,0,M,,")
    ).encode()
    fixes, _ = decode(data)
    assert len(fixes) == 1
    fix = fixes[0]
    assert abs(fix.lat - lat) < 1e-8
    assert abs(fix.lon - lon) < 1e-8
    assert abs(fix.alt_m - alt) <= 0.05 + 1e-9
    assert abs(fix.speed_mps - knots * 1852 / 3600) <= 0.0005 * 1852 / 3600 + 1e-9
    assert abs(fix.course_deg - course) <= 0.005 + 1e-9
    expected = stamp.replace(microsecond=stamp.microsecond // 10000 * 10000, tzinfo=UTC)
    assert fix.time == expected


def _sentences(*bodies: str) -> bytes:
    return "".join(encode_sentence(b) for b in bodies).encode()


def _cycle(hms: str, lat: str = "2232.1234") -> list[str]:
    return [
        f"GPRMC,{hms},A,{lat},N,11403.5678,E,1.0,90.0,231126,,,A",
        f"GPGGA,{hms},{lat},N,11403.5678,E,1,08,0.9,35.2,M,-3.0,M,,",
        "GPGSA,A,3,01,02,03,04,05,,,,,,,,1.5,0.9,1.2",
    ]


def test_cycle_ender_is_learnt_and_a_cut_off_last_cycle_is_still_reported() -> None:
    # RMC, GGA, GSA each second: GGA (the last timed sentence) ends the cycle; the
    # log ends right after the last GGA, before its GSA: that cycle is reported.
    bodies = _cycle("100000") + _cycle("100001") + _cycle("100002")[:2]
    fixes, _ = decode(_sentences(*bodies))
    assert [f.time.second for f in fixes if f.time] == [0, 1, 2]
    assert all(f.mode == 3 for f in fixes)


def test_a_cycle_cut_before_its_report_point_is_not_reported() -> None:
    bodies = _cycle("100000") + _cycle("100001") + _cycle("100002")[:1]
    fixes, _ = decode(_sentences(*bodies))
    assert [f.time.second for f in fixes if f.time] == [0, 1]


def test_gll_stamped_a_second_late_continues_the_cycle() -> None:
    # A split-cycle receiver (Garmin 48 style): RMC/GGA of second T, then GLL of T+1.
    # gpsd lets GLL continue a cycle and reports on it: the fixes carry GLL's time.
    bodies: list[str] = []
    for t in range(0, 8, 2):
        bodies += _cycle(f"1000{t:02d}")[:2]
        bodies.append(f"GPGLL,2232.1299,N,11403.5678,E,1000{t + 1:02d},A,A")
    fixes, _ = decode(_sentences(*bodies))
    valid = [f for f in fixes if f.mode >= 2]
    # second 0: reported before the cycle is known (as gpsd does at start-up)
    assert [f.time.second for f in valid if f.time] == [0, 1, 3, 5, 7]
    assert all(f.lat is not None and abs(f.lat - (22 + 32.1299 / 60)) < 1e-9 for f in valid[1:])


def test_gga_quality_0_is_never_a_fix() -> None:
    # A cold-start guess: GGA quality 0 with a position and 4 satellites, RMC says V.
    # gpsd reports the GGA as a fix and takes it back at the RMC V of the same second;
    # the decoder gives the epoch as no fix, without the guessed position.
    bodies = [
        "GPRMC,100000,V,2232.1234,N,11403.5678,E,,,231126,,,N",
        "GPGGA,100000,2232.1234,N,11403.5678,E,0,04,,35.2,M,-3.0,M,,",
        "GPRMC,100001,V,2232.1234,N,11403.5678,E,,,231126,,,N",
        "GPGGA,100001,2232.1234,N,11403.5678,E,0,04,,35.2,M,-3.0,M,,",
    ]
    fixes, _ = decode(_sentences(*bodies))
    assert len(fixes) == 2
    assert all(f.mode == 1 and f.lat is None and f.lon is None for f in fixes)
    assert not any(f.receiver_valid for f in fixes)


def test_a_valid_epoch_is_receiver_valid_and_a_no_fix_never_is() -> None:
    fixes, _ = decode(EPOCH)
    assert [f.receiver_valid for f in fixes] == [True]
    no_fix, _ = decode(
        _sentences("GPGGA,100000,,,,,0,00,,,M,,M,,", "GPRMC,100000,V,,,,,,,231126,,,N")
    )
    assert no_fix
    assert all(f.mode == 1 and not f.receiver_valid for f in no_fix)


def test_rmc_status_a_with_faa_mode_n_is_no_fix() -> None:
    bodies = [f"GPRMC,1000{t:02d},A,2232.1234,N,11403.5678,E,1.0,90.0,231126,,,N" for t in range(3)]
    fixes, _ = decode(_sentences(*bodies))
    assert [(f.mode, f.lat) for f in fixes] == [(1, None)] * 3
    assert not any(f.receiver_valid for f in fixes)


def test_gsa_mode_is_the_cycle_verdict() -> None:
    # GGA with quality 2 but no satellite count (gpsd: < 3 satellites, no fix), then
    # a GSA saying 3D: the cycle has a fix, as gpsd reports it.
    bodies = [
        "GNRMC,120213.000,A,5957.0062,N,01100.6429,E,0.00,0.00,310722,,,D,V",
        "GNGGA,120213.000,5957.0062,N,01100.6429,E,2,00,1.3,168.9,M,39.5,M,,",
        "GNGSA,A,3,68,69,70,78,84,85,,,,,,,1.5,1.3,1.0,2",
        "GPZDA,120213.000,31,07,2022,+00,00",
    ]
    fixes, _ = decode(_sentences(*bodies))
    assert len(fixes) == 1
    assert fixes[0].mode == 3
    assert fixes[0].lat is not None


def _gga_gsa_rmc(t: int, gsa_mode: int, vtg_mode: str = "A") -> list[str]:
    """GGA (a valid fix), then GSA and VTG, then the RMC A of the same second."""
    hms = f"1000{t:02d}"
    return [
        f"GPGGA,{hms},2232.1234,N,11403.5678,E,1,08,0.9,35.2,M,-3.0,M,,",
        f"GPGSA,A,{gsa_mode},01,02,03,04,,,,,,,,,1.5,0.9,1.2",
        f"GPVTG,90.0,T,,M,1.0,N,1.9,K,{vtg_mode}",
        f"GPRMC,{hms},A,2232.1234,N,11403.5678,E,1.0,90.0,231126,,,A",
    ]


def test_gsa_mode_1_or_vtg_n_inside_an_epoch_is_no_fix() -> None:
    # A GSA mode 1 or a VTG mode N followed by a sentence stamped with the same second
    # is that second's: the receiver says it has no fix, whatever the GGA and RMC say.
    bodies = _gga_gsa_rmc(0, 3) + _gga_gsa_rmc(1, 1) + _gga_gsa_rmc(2, 3, "N") + _gga_gsa_rmc(3, 3)
    fixes, _ = decode(_sentences(*bodies))
    assert [(f.time.second if f.time else None, f.mode) for f in fixes] == [
        (0, 3),
        (1, 1),
        (2, 1),
        (3, 3),
    ]
    assert [f.lat is None for f in fixes] == [False, True, True, False]


def test_gsa_mode_1_after_the_last_stamped_sentence_takes_nothing_back() -> None:
    # As quectel.log when it loses lock: VTG N and GSA 1 come after the epoch's last
    # time-stamped sentence, before any time of the next: they may be the next epoch's,
    # so they do not make the fix before them a no-fix (gpsd's verdict stands).
    bodies = [
        "GPGGA,022038.00,3644.762563,S,17444.069733,E,1,06,1.1,53.0,M,37.0,M,,",
        "GPRMC,022038.00,A,3644.762563,S,17444.069733,E,0.0,,071020,18.3,E,A,V",
        "GPVTG,,T,,M,,N,,K,N",
        "GPGSA,A,1,,,,,,,,,,,,,,,,",
        "GPGGA,,,,,,0,,,,,,,,",
        "GPRMC,,V,,,,,,,,,,N",
    ]
    fixes, _ = decode(_sentences(*bodies))
    first = fixes[0]
    assert first.mode == 3 and first.time is not None and first.time.second == 38

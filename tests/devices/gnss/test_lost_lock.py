"""A receiver that loses lock and keeps sending its last position is never a fix.

Built from a real log (`ublox-8.log`, gpsd's regression suite): from one second on,
every sentence is edited as a receiver that lost lock sends it — GGA quality 0, RMC
status V with FAA mode N, GLL V/N, VTG N, GSA mode 1 without satellites — with the
last valid position repeated and the time going on. `python -m devices.gnss decode`
must print no 2D/3D epoch from there on (gpsd ends those cycles with no fix).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from devices.gnss.codec import NmeaStreamDecoder, encode_sentence
from devices.gnss.conformance import read_log
from devices.gnss.sentences import parse_sentence, time_of, to_time_of_day
from tests.realdata import GPSD_LOGS

LOG = read_log(GPSD_LOGS / "ublox-8.log")
LOST_AT = "001010.00"  # the first second without lock (the log runs 00:09:41 to 00:10:53)


def _lost(kind: str, fields: list[str], last: list[str]) -> list[str]:
    """`fields` of one sentence as sent after the loss, with position `last`."""
    if kind == "GGA":
        fields[1:5], fields[5] = last, "0"  # still tracking: the satellite count stays
    elif kind == "RMC":
        fields[1], fields[2:6], fields[11] = "V", last, "N"
    elif kind == "GLL":
        fields[0:4], fields[5], fields[6] = last, "V", "N"
    elif kind == "VTG":
        fields[8] = "N"
    elif kind == "GSA":
        fields[1] = "1"
        fields[2:14] = [""] * 12
    return fields


def lost_lock_log() -> tuple[bytes, int]:
    """The log with lock lost from LOST_AT on; and how many seconds that is."""
    out = bytearray()
    lost = False
    last: list[str] = []
    seconds: set[str] = set()
    for raw in LOG.splitlines(keepends=True):
        try:
            sentence = parse_sentence(raw.rstrip(b"\r\n"))
        except ValueError:
            out += raw
            continue
        fields = list(sentence.fields)
        stamp = time_of(sentence.kind, sentence.fields)
        if stamp is not None and stamp >= (0, 10, 10, 0):
            lost = True
            seconds.add(f"{stamp}")
        if not lost:
            if sentence.kind == "GGA" and fields[1]:
                last = fields[1:5]
            out += raw
            continue
        fields = _lost(sentence.kind, fields, last)
        out += encode_sentence(f"{sentence.talker}{sentence.kind}," + ",".join(fields)).encode()
    return bytes(out), len(seconds)


def test_the_edit_is_what_a_receiver_without_lock_sends() -> None:
    data, lost_seconds = lost_lock_log()
    assert lost_seconds >= 40
    text = data.decode("ascii", "replace")
    assert f"$GNRMC,{LOST_AT},V," in text
    assert f"$GNGGA,{LOST_AT}," in text
    decoder = NmeaStreamDecoder()
    decoder.feed(data)
    decoder.flush()
    assert decoder.stats.bad_checksum == 0
    assert to_time_of_day(LOST_AT) == (0, 10, 10, 0)


def without_gsa_vtg_gll(data: bytes) -> bytes:
    """The stream of a receiver that sends no GSA, VTG or GLL: only RMC and GGA (with
    its satellite count, which gpsd takes for a 3D fix) declare the loss."""
    drop = (b"$GNGSA", b"$GNVTG", b"$GNGLL")
    return b"".join(x for x in data.splitlines(keepends=True) if not x.startswith(drop))


@pytest.mark.parametrize("only_rmc_gga", [False, True])
def test_decode_prints_no_fix_after_lock_is_lost(tmp_path: Path, only_rmc_gga: bool) -> None:
    data, lost_seconds = lost_lock_log()
    if only_rmc_gga:
        data = without_gsa_vtg_gll(data)
    log = tmp_path / "lost-lock.log"
    log.write_bytes(b"# ublox-8.log, lock lost at 00:10:10\n" + data)
    run = subprocess.run(
        [sys.executable, "-m", "devices.gnss", "decode", str(log)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    rows = [json.loads(line) for line in run.stdout.splitlines()]
    before = [r for r in rows if r["time"] < "2017-01-10T00:10:10"]
    after = [r for r in rows if r["time"] >= "2017-01-10T00:10:10"]
    # up to the loss: the fixes of the real log
    assert len(before) >= 28 and all(r["mode"] == 3 and r["receiver_valid"] for r in before)
    # from the loss on: every epoch printed, none of them a fix, no position
    assert len(after) == lost_seconds
    assert all(r["mode"] == 1 for r in after)
    assert all(r["lat"] is None and r["lon"] is None and not r["receiver_valid"] for r in after)

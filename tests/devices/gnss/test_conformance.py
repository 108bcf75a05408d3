"""Conformance with gpsd on real receiver logs (`tests/data/gpsd`).

One test per log found in the folder (so a new log is checked without editing this
file): >= 99 % of gpsd's 2D/3D fixes reproduced (position within 1e-6°, time modulo
1024 GPS weeks where gpsd has one) and no fix where gpsd reported none. The per-log
table is printed at the end of the session (see conftest.py) and regenerated with
`python -m devices.gnss conformance DIR` (writes docs/gnss-conformance.md).

DIVERGENCES lists logs that may not meet the target, each with the reason (a
decision or an unexplained gpsd artefact, documented in docs/gnss.md); they are strict
xfails, so a change that makes one pass fails loudly. Today there are none: every log
meets the target.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from devices.gnss.conformance import LogResult, check_log, decode_bytes, final_reports, read_log
from tests.realdata import GPSD_LOGS

DATA = GPSD_LOGS
RESULTS: list[LogResult] = []

DIVERGENCES: dict[str, str] = {}

LOGS = sorted(p.name for p in DATA.glob("*.log") if Path(f"{p}.chk").exists())


def test_the_reference_logs_are_there() -> None:
    assert len(LOGS) >= 61


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(n, marks=pytest.mark.xfail(reason=DIVERGENCES[n], strict=True))
        if n in DIVERGENCES
        else n
        for n in LOGS
    ],
)
def test_log_matches_gpsd(name: str) -> None:
    result = check_log(DATA / name)
    RESULTS.append(result)
    assert result.pct >= 99.0, f"{name}: {result.matched}/{result.reference} fixes reproduced"
    assert result.extra == 0, f"{name}: {result.extra} fixes gpsd did not report"


def test_divergences_are_real_logs() -> None:
    assert set(DIVERGENCES) <= set(LOGS)


def test_chunking_does_not_change_the_fixes() -> None:
    """The serial port delivers the stream in arbitrary pieces: same fixes for all logs."""
    for name in LOGS:
        data = read_log(DATA / name)
        whole = decode_bytes(data)
        assert decode_bytes(data, 7) == whole, name
        assert decode_bytes(data, 4096) == whole, name


def test_receiver_declared_invalid_epochs_on_the_real_logs() -> None:
    """A cold-start GGA of quality 0 with a guessed position: gpsd reports it as a fix
    and takes it back in the same cycle (RMC V or GSA mode 1 of that second), so it is
    no reference fix; the decoder gives such an epoch as no fix, without position."""
    for name in LOGS:
        for fix in decode_bytes(read_log(DATA / name)):
            assert fix.receiver_valid == (fix.mode >= 2), name
            assert (fix.lat is None) == (fix.mode == 1), name
    chk = (DATA / "mtk-3301.log.chk").read_text(encoding="utf-8").splitlines()
    guess = (52.216316550, 6.884965100)  # GGA 081434.590 quality 0, then RMC V
    reported = [r for r in final_reports(chk) if (r.get("lat"), r.get("lon")) == guess]
    every = [json.loads(x) for x in chk if x.startswith("{") and '"TPV"' in x]
    assert any((r.get("lat"), r.get("lon")) == guess for r in every)  # gpsd did report it
    assert reported == []  # ... and took it back
    fixes = decode_bytes(read_log(DATA / "mtk-3301.log"))
    assert not any(f.lat is not None and abs(f.lat - guess[0]) < 1e-6 for f in fixes)


def test_a_no_fix_after_the_cycle_s_last_time_stamp_takes_nothing_back() -> None:
    """Untimed sentences after a cycle's last time-stamped one may be the next cycle's
    (quectel.log loses lock: VTG N and GSA 1 come before any time): gpsd's no-fix
    report on them does not take the cycle's fix back."""
    chk = (DATA / "quectel.log.chk").read_text(encoding="utf-8").splitlines()
    times = {r.get("time") for r in final_reports(chk) if r.get("mode") in (2, 3)}
    assert "2020-10-07T02:20:38.000Z" in times

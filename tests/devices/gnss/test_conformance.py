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

from pathlib import Path

import pytest

from devices.gnss.conformance import LogResult, check_log, decode_bytes, read_log
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


def test_receiver_declared_invalid_fixes_on_the_real_logs() -> None:
    """gpsd reports the positions of GGA quality 0 (the RMC of the same second says V)
    as fixes, and so do we; they, and only they, carry `receiver_valid=False`."""
    invalid: dict[str, int] = {}
    for name in LOGS:
        fixes = decode_bytes(read_log(DATA / name))
        count = sum(1 for f in fixes if f.mode >= 2 and not f.receiver_valid)
        if count:
            invalid[name] = count
        assert all(f.receiver_valid == (f.mode >= 2) for f in fixes if f.mode == 1), name
    assert invalid == {"mtk-3301.log": 1, "myguide-3100.log": 2, "tr737A+.log": 1}

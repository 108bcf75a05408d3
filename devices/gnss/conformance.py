"""Compare our decoder with gpsd's regression outputs (`X.log` + `X.log.chk`).

A reference fix is a gpsd `TPV` report with mode 2 or 3 and a position. gpsd reports
after many sentences of an epoch, so its reports with the same `time` form one
reference fix (any of the positions it reported for that time counts). Reports
without `time` (gpsd could not date the fix) are matched by position alone. Times
are compared modulo 1024 GPS weeks (gpsd's week-rollover guess may shift dates).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from devices.errors import ChecksumError, FrameError
from devices.gnss.codec import GnssFix, NmeaStreamDecoder
from devices.gnss.sentences import parse_sentence, time_of

ROLLOVER_MS = 1024 * 7 * 86400 * 1000
POSITION_TOLERANCE_DEG = 1e-6


@dataclass
class RefFix:
    time_key: int | None
    positions: list[tuple[float, float]] = field(default_factory=list)


@dataclass(frozen=True)
class LogResult:
    log: str
    reference: int
    matched: int
    extra: int

    @property
    def pct(self) -> float:
        return 100.0 if self.reference == 0 else 100.0 * self.matched / self.reference

    @property
    def passed(self) -> bool:
        return self.pct >= 99.0 and self.extra == 0


def time_key(stamp: datetime) -> int:
    """Milliseconds since the epoch, modulo 1024 GPS weeks."""
    return round(stamp.timestamp() * 1000) % ROLLOVER_MS


def read_log(path: Path) -> bytes:
    """The receiver's bytes of a gpsd `.log` file: `#` comment lines removed."""
    data = path.read_bytes()
    return b"".join(line for line in data.splitlines(keepends=True) if not line.startswith(b"#"))


def decode_bytes(data: bytes, chunk: int = 0) -> list[GnssFix]:
    decoder = NmeaStreamDecoder()
    fixes: list[GnssFix] = []
    if chunk <= 0:
        fixes += decoder.feed(data)
    else:
        for i in range(0, len(data), chunk):
            fixes += decoder.feed(data[i : i + chunk])
    fixes += decoder.flush()
    return fixes


def final_reports(chk_lines: Iterable[str]) -> list[dict[str, Any]]:
    """gpsd's TPV reports of the reporting cycles it did not take back.

    The `.chk` echoes each sentence gpsd read before the reports it caused. A cycle is
    the run of sentences from one carrying a time of day (whatever its status) to the
    next one carrying another; untimed sentences (GSA, VTG, GSV) in between belong to
    it. gpsd may report a fix and then, in the same cycle, take it back: a cold-start
    GGA of quality 0 with a guessed position reports a fix, and the RMC `V` of the same
    second, or a GSA mode 1 before it, reports no fix. The cycle's verdict is gpsd's
    last report up to the cycle's last time-stamped sentence: untimed sentences after
    it may already be the next cycle's (a receiver that loses lock sends its next
    second's VTG `N` and GSA mode 1 before any time). When that verdict has no fix
    (mode < 2), none of the cycle's reports is a reference fix."""
    kept: list[dict[str, Any]] = []
    cycle: list[dict[str, Any]] = []
    upto = 0  # the cycle's reports up to its last time-stamped sentence's own
    timed_last = False
    cycle_time: float | None = None
    for line in chk_lines:
        if line.startswith(("$", "!")):
            if timed_last:
                upto = len(cycle)
            seconds = _sentence_seconds(line)
            timed_last = seconds is not None
            if seconds is not None and (cycle_time is None or abs(seconds - cycle_time) > 0.01):
                kept += _stands(cycle, upto)
                cycle, upto = [], 0
                cycle_time = seconds
            continue
        if not line.startswith("{") or '"TPV"' not in line:
            continue
        try:
            report = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(report, dict):
            cycle.append(report)
    return kept + _stands(cycle, len(cycle) if timed_last else upto)


def _sentence_seconds(line: str) -> float | None:
    try:
        sentence = parse_sentence(line.strip().encode("ascii", "replace"))
    except (ChecksumError, FrameError):
        return None
    tod = time_of(sentence.kind, sentence.fields)
    return None if tod is None else tod[0] * 3600 + tod[1] * 60 + tod[2] + tod[3] / 1e6


def _stands(reports: list[dict[str, Any]], upto: int) -> list[dict[str, Any]]:
    """The cycle's reports, unless gpsd's report at its last time-stamped sentence
    (`upto` reports in) and its last report both say no fix."""
    if not reports:
        return []
    at_stamp = reports[upto - 1] if upto > 0 else reports[-1]
    if at_stamp.get("mode") not in (2, 3) and reports[-1].get("mode") not in (2, 3):
        return []
    return reports


def reference_fixes(chk_lines: Iterable[str]) -> list[RefFix]:
    refs: list[RefFix] = []
    for report in final_reports(chk_lines):
        if report.get("mode") not in (2, 3) or "lat" not in report or "lon" not in report:
            continue
        position = (float(report["lat"]), float(report["lon"]))
        key: int | None = None
        if "time" in report:
            key = time_key(datetime.fromisoformat(report["time"].replace("Z", "+00:00")))
        last = refs[-1] if refs else None
        if (
            last is not None
            and last.time_key == key
            and (key is not None or _near(last.positions[-1], position))
        ):
            if position not in last.positions:
                last.positions.append(position)
            continue
        refs.append(RefFix(key, [position]))
    return refs


def _near(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return abs(a[0] - b[0]) <= POSITION_TOLERANCE_DEG and abs(a[1] - b[1]) <= POSITION_TOLERANCE_DEG


def _matches(fix: GnssFix, ref: RefFix) -> bool:
    assert fix.lat is not None
    assert fix.lon is not None
    if ref.time_key is not None and fix.time is not None and time_key(fix.time) != ref.time_key:
        return False
    if ref.time_key is not None and fix.time is None:
        return False
    return any(_near((fix.lat, fix.lon), p) for p in ref.positions)


def compare(fixes: list[GnssFix], refs: list[RefFix]) -> tuple[int, int]:
    """(reference fixes reproduced, our fixes that gpsd did not report)."""
    ours = [f for f in fixes if f.mode >= 2 and f.lat is not None and f.lon is not None]
    by_time: dict[int, list[GnssFix]] = {}
    for fix in ours:
        if fix.time is not None:
            by_time.setdefault(time_key(fix.time), []).append(fix)
    timeless_ours = [f for f in ours if f.time is None]
    matched = 0
    for ref in refs:
        candidates = by_time.get(ref.time_key, []) if ref.time_key is not None else ours
        if ref.time_key is not None:
            candidates = candidates + timeless_ours
        if any(_matches(f, ref) for f in candidates):
            matched += 1
    refs_by_time: dict[int | None, list[RefFix]] = {}
    for ref in refs:
        refs_by_time.setdefault(ref.time_key, []).append(ref)
    timeless_refs = refs_by_time.get(None, [])
    extra = 0
    for fix in ours:
        if fix.time is None:
            pool = refs
        else:
            pool = refs_by_time.get(time_key(fix.time), []) + timeless_refs
        if not any(_matches(fix, ref) for ref in pool):
            extra += 1
    return matched, extra


def check_log(log: Path) -> LogResult:
    chk = log.with_name(log.name + ".chk")
    refs = reference_fixes(chk.read_text(encoding="utf-8", errors="replace").splitlines())
    fixes = decode_bytes(read_log(log))
    matched, extra = compare(fixes, refs)
    return LogResult(log.name, len(refs), matched, extra)


def check_dir(directory: Path) -> list[LogResult]:
    return [check_log(p) for p in sorted(directory.glob("*.log")) if Path(f"{p}.chk").exists()]


def table(results: list[LogResult]) -> str:
    lines = [
        "| log | reference fixes | matched | extra | pct |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(f"| {r.log} | {r.reference} | {r.matched} | {r.extra} | {r.pct:.1f} |")
    total_ref = sum(r.reference for r in results)
    total_matched = sum(r.matched for r in results)
    total_extra = sum(r.extra for r in results)
    pct = 100.0 if total_ref == 0 else 100.0 * total_matched / total_ref
    lines.append(
        f"| **all {len(results)} logs** | {total_ref} | {total_matched} | "
        f"{total_extra} | {pct:.2f} |"
    )
    return "\n".join(lines)

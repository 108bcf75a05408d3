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

from devices.gnss.codec import GnssFix, NmeaStreamDecoder

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


def reference_fixes(chk_lines: Iterable[str]) -> list[RefFix]:
    refs: list[RefFix] = []
    for line in chk_lines:
        if not line.startswith("{") or '"TPV"' not in line:
            continue
        try:
            report = json.loads(line)
        except json.JSONDecodeError:
            continue
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

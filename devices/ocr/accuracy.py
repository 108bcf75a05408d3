"""Accuracy of the gate reader on labelled real photographs (`DATA_DIR/containers`, `/plates`).

`python -m devices.ocr accuracy [DATA_DIR]` regenerates docs/gate-vision-accuracy.md.
"""

from __future__ import annotations

import csv
import os
import time
from dataclasses import dataclass
from pathlib import Path

from devices.ocr.reader import GateReader, load_image
from devices.ocr.results import ContainerResult


@dataclass(frozen=True)
class ContainerRow:
    file: str
    expected: str
    readable: bool
    read: str
    confidence: float
    check_digit_ok: bool
    needs_review: bool
    iso_expected: str
    iso_read: str
    elapsed_ms: float

    @property
    def verdict(self) -> str:
        if not self.read:
            return "missed" if self.readable else "ok (nothing)"
        if self.read == self.expected:
            return "exact" if not self.needs_review else "exact (review)"
        if self.check_digit_ok and not self.needs_review:
            return "WRONG"
        return "wrong (review)"


@dataclass(frozen=True)
class PlateRow:
    file: str
    expected: str
    read: str
    confidence: float
    needs_review: bool
    elapsed_ms: float

    @property
    def verdict(self) -> str:
        if self.read == self.expected:
            return "exact"
        return "missed" if not self.read else "wrong"


def _primary(containers: list[ContainerResult]) -> ContainerResult | None:
    return containers[0] if containers else None


def container_rows(data_dir: Path, reader: GateReader | None = None) -> list[ContainerRow]:
    reader = reader or GateReader()
    rows: list[ContainerRow] = []
    with open(data_dir / "containers" / "labels.csv", newline="", encoding="utf-8") as fh:
        for label in csv.DictReader(fh):
            image = load_image(str(data_dir / "containers" / label["file"]))
            reading = reader.read(image)
            top = _primary(reading.containers)
            rows.append(
                ContainerRow(
                    file=label["file"],
                    expected=label["container_number"],
                    readable=label["readable"] == "yes",
                    read=top.number if top else "",
                    confidence=top.confidence if top else 0.0,
                    check_digit_ok=bool(top and top.check_digit_ok),
                    needs_review=bool(top is None or top.needs_review),
                    iso_expected=label["iso_type"],
                    iso_read=(top.iso_type or "") if top else "",
                    elapsed_ms=reading.elapsed_ms,
                )
            )
    return rows


def plate_rows(data_dir: Path, reader: GateReader | None = None) -> list[PlateRow]:
    reader = reader or GateReader()
    rows: list[PlateRow] = []
    with open(data_dir / "plates" / "labels.csv", newline="", encoding="utf-8") as fh:
        for label in csv.DictReader(fh):
            image = load_image(str(data_dir / "plates" / label["file"]))
            reading = reader.read(image)
            plate = reading.plate
            rows.append(
                PlateRow(
                    file=label["file"],
                    expected=label["plate"],
                    read=plate.text if plate else "",
                    confidence=plate.confidence if plate else 0.0,
                    needs_review=bool(plate is None or plate.needs_review),
                    elapsed_ms=reading.elapsed_ms,
                )
            )
    return rows


def _short(name: str, width: int = 58) -> str:
    return name if len(name) <= width else "…" + name[-(width - 1) :]


def summary(containers: list[ContainerRow], plates: list[PlateRow]) -> dict[str, float]:
    readable = [r for r in containers if r.readable]
    exact = [r for r in readable if r.read == r.expected]
    confident = [r for r in readable if r.read == r.expected and not r.needs_review]
    wrong = [r for r in containers if r.verdict == "WRONG"]
    plate_exact = [r for r in plates if r.verdict == "exact"]
    times = sorted(r.elapsed_ms for r in containers)
    return {
        "containers": len(containers),
        "readable": len(readable),
        "exact": len(exact),
        "exact_pct": 100.0 * len(exact) / max(1, len(readable)),
        "exact_confident": len(confident),
        "confident_wrong": len(wrong),
        "plates": len(plates),
        "plates_exact": len(plate_exact),
        "plates_exact_pct": 100.0 * len(plate_exact) / max(1, len(plates)),
        "ms_p50": times[len(times) // 2] if times else 0.0,
    }


def markdown(containers: list[ContainerRow], plates: list[PlateRow]) -> str:
    s = summary(containers, plates)
    lines = [
        "# Gate vision accuracy on real photographs",
        "",
        "Regenerate with `python -m devices.ocr accuracy` (reads `$BONDWATCH_DATA`, by default",
        "`../shared/data`, in place: most images are not part of the project). Verdicts:",
        "`exact` number right and confident; `exact (review)` right but below the review",
        "threshold; `wrong (review)` a wrong number",
        "that is flagged for review; `WRONG` a wrong number reported confident with a valid",
        "check digit (must never happen); `missed` nothing read.",
        "",
        f"- container numbers read exactly: **{s['exact']}/{s['readable']} "
        f"({s['exact_pct']:.1f} %)**, of which {s['exact_confident']} above the review threshold",
        f"- wrong numbers reported confident with a valid check digit: **{s['confident_wrong']}**",
        f"- plates read exactly: **{s['plates_exact']}/{s['plates']} "
        f"({s['plates_exact_pct']:.1f} %)**",
        f"- median time per container photo: {s['ms_p50']:.0f} ms (wall clock on the machine "
        "that ran it, which may be shared; docs/gate-vision.md gives speed as ratios)",
        "",
        "## Containers",
        "",
        "| file | expected | read | confidence | iso type (exp/read) | verdict |",
        "|---|---|---|---|---|---|",
    ]
    for r in containers:
        lines.append(
            f"| {_short(r.file)} | {r.expected} | {r.read or '—'} | {r.confidence:.2f} | "
            f"{r.iso_expected or '—'}/{r.iso_read or '—'} | {r.verdict} |"
        )
    lines += [
        "",
        "## Plates",
        "",
        "| file | expected | read | confidence | verdict |",
        "|---|---|---|---|---|",
    ]
    for p in plates:
        lines.append(
            f"| {_short(p.file)} | {p.expected} | {p.read or '—'} | "
            f"{p.confidence:.2f} | {p.verdict} |"
        )
    return "\n".join(lines) + "\n"


def text_table(containers: list[ContainerRow], plates: list[PlateRow]) -> str:
    out = [f"{'file':60} {'expected':12} {'read':12} {'conf':>5} verdict"]
    for r in containers:
        out.append(
            f"{_short(r.file, 60):60} {r.expected:12} {r.read or '-':12} "
            f"{r.confidence:5.2f} {r.verdict}"
        )
    for p in plates:
        out.append(
            f"{_short(p.file, 60):60} {p.expected:12} {p.read or '-':12} "
            f"{p.confidence:5.2f} {p.verdict}"
        )
    return "\n".join(out)


#: Names the folder of labelled photos read in place (`containers/`, `plates/`).
DATA_ENV = "BONDWATCH_DATA"


def default_data_dir() -> Path:
    """`$BONDWATCH_DATA`, else `shared/data` beside the repository (`../shared/data`)."""
    named = os.environ.get(DATA_ENV)
    if named:
        return Path(named)
    return Path(__file__).resolve().parents[3] / "shared" / "data"


def run(data_dir: Path, output: Path | None) -> dict[str, float]:
    started = time.perf_counter()
    reader = GateReader()
    containers = container_rows(data_dir, reader)
    plates = plate_rows(data_dir, reader)
    print(text_table(containers, plates))
    s = summary(containers, plates)
    print({k: round(v, 1) for k, v in s.items()}, f"total {time.perf_counter() - started:.1f} s")
    if output is not None:
        output.write_text(markdown(containers, plates), encoding="utf-8")
    return s

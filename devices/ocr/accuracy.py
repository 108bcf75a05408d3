"""Accuracy of the gate reader: held out by source, in sample, and on the synthetic set.

`python -m devices.ocr accuracy [DATA_DIR]` reads every labelled photo of
`DATA_DIR/containers` and `DATA_DIR/plates` once (readings are cached, keyed by the
image's bytes and the reader's code and configuration) and the camera stub's synthetic
set, then regenerates docs/gate-vision-accuracy.md.

The headline is **leave one source out**: each source repository is held out in turn
and every parameter chosen from data is chosen without it. The reader's only
data-fitted parameter is the review threshold (`fit_threshold`: never below the
designed `DEFAULT_REVIEW_THRESHOLD`, raised above the most confident wrong reading of
the photos it may see). Readings themselves do not depend on the threshold (a reading
records its confidence and whether it is doubtful whatever the threshold), so one read
per image serves every fold.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import json
import os
import statistics
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from devices.ocr.reader import GateReader, check_image, load_image
from devices.ocr.results import DEFAULT_REVIEW_THRESHOLD, ImageReading

Kind = Literal["container", "plate"]

#: How far above the most confident wrong reading a fitted threshold is put.
FIT_MARGIN = 0.02


@dataclass(frozen=True)
class Reading:
    """What the reader made of one labelled image, whatever the review threshold."""

    file: str
    kind: Kind
    source: str  # the source repository (photos) or the class (synthetic set)
    expected: str
    readable: bool
    read: str
    confidence: float
    check_digit_ok: bool  # containers: the check digit seen and valid; plates: a valid format
    doubtful: bool  # sent to review whatever the threshold
    iso_expected: str = ""
    iso_read: str = ""
    elapsed_ms: float = 0.0

    def needs_review(self, threshold: float) -> bool:
        return (
            not self.read or self.doubtful or not self.check_digit_ok or self.confidence < threshold
        )


@dataclass(frozen=True)
class Row:
    """A reading judged at a review threshold."""

    reading: Reading
    threshold: float

    def __getattr__(self, name: str) -> Any:
        return getattr(self.reading, name)

    @property
    def needs_review(self) -> bool:
        return self.reading.needs_review(self.threshold)

    @property
    def verdict(self) -> str:
        r = self.reading
        if not r.read:
            return "missed" if r.readable else "ok (nothing)"
        if r.read == r.expected:
            return "exact (review)" if self.needs_review else "exact"
        return "wrong (review)" if self.needs_review else "WRONG"


# -- reading, once per image -----------------------------------------------------------


def reader_fingerprint(reader: GateReader) -> str:
    """Changes whenever the reader's code or configuration does (the cache key's half)."""
    digest = hashlib.sha256(reader.config.model_dump_json().encode())
    for path in sorted(Path(__file__).parent.glob("*.py")):
        if path.name not in ("accuracy.py", "__main__.py"):
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


class ReadingCache:
    """Readings by image content and reader fingerprint; kept in a JSON file if given."""

    def __init__(self, reader: GateReader, path: Path | None = None) -> None:
        self.reader = reader
        self.path = path
        self.reads = 0  # images actually read (cache misses)
        self._prefix = reader_fingerprint(reader)
        self._entries: dict[str, dict[str, Any]] = {}
        if path is not None and path.is_file():
            try:
                self._entries = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                self._entries = {}  # a damaged cache is read again, never trusted

    def read(self, content: bytes, load: Callable[[], Any]) -> dict[str, Any]:
        """The reading of the image whose bytes are `content` (`load` decodes it)."""
        key = f"{self._prefix}:{hashlib.sha256(content).hexdigest()}"
        entry = self._entries.get(key)
        if entry is None:
            entry = _entry(self.reader.read(load()))
            self._entries[key] = entry
            self.reads += 1
        return entry

    def save(self) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self._entries, ensure_ascii=False), encoding="utf-8")
        os.replace(tmp, self.path)


def _entry(reading: ImageReading) -> dict[str, Any]:
    top = reading.containers[0] if reading.containers else None
    plate = reading.plate
    return {
        "container": None
        if top is None
        else {
            "number": top.number,
            "confidence": top.confidence,
            "check_digit_ok": top.check_digit_ok,
            "doubtful": top.doubtful,
            "iso_type": top.iso_type or "",
        },
        "plate": None
        if plate is None
        else {"text": plate.text, "confidence": plate.confidence, "doubtful": plate.doubtful},
        "elapsed_ms": reading.elapsed_ms,
    }


def _reading(
    entry: dict[str, Any], kind: Kind, file: str, source: str, expected: str, **extra: Any
) -> Reading:
    if kind == "container":
        top = entry["container"] or {}
        return Reading(
            file,
            kind,
            source,
            expected,
            extra.get("readable", True),
            top.get("number", ""),
            top.get("confidence", 0.0),
            top.get("check_digit_ok", False),
            top.get("doubtful", False),
            extra.get("iso_expected", ""),
            top.get("iso_type", ""),
            entry["elapsed_ms"],
        )
    plate = entry["plate"] or {}
    return Reading(
        file,
        kind,
        source,
        expected,
        True,
        plate.get("text", ""),
        plate.get("confidence", 0.0),
        bool(plate),
        plate.get("doubtful", False),
        elapsed_ms=entry["elapsed_ms"],
    )


def read_photos(data_dir: Path, kind: Kind, cache: ReadingCache) -> list[Reading]:
    """Every labelled photo of `data_dir/containers` or `data_dir/plates`, read once."""
    folder = data_dir / ("containers" if kind == "container" else "plates")
    out: list[Reading] = []
    with open(folder / "labels.csv", newline="", encoding="utf-8") as fh:
        for label in csv.DictReader(fh):
            path = folder / label["file"]
            entry = cache.read(path.read_bytes(), functools.partial(load_image, str(path)))
            if kind == "container":
                out.append(
                    _reading(
                        entry,
                        kind,
                        label["file"],
                        label["source_repo"],
                        label["container_number"],
                        readable=label["readable"] == "yes",
                        iso_expected=label["iso_type"],
                    )
                )
            else:
                out.append(
                    _reading(entry, kind, label["file"], label["source_repo"], label["plate"])
                )
    return out


def _same(image: Any) -> Any:
    return image


def read_synthetic(cache: ReadingCache, seed: int | None = None) -> list[Reading]:
    """The camera stub's synthetic set (firmware_stubs/camera/synthetic.py), read once."""
    from firmware_stubs.camera import synthetic  # the stub's renderer: only when asked

    out: list[Reading] = []
    for item in synthetic.samples(synthetic.DEFAULT_SEED if seed is None else seed):
        image = check_image(item.draw())
        entry = cache.read(image.tobytes(), functools.partial(_same, image))
        kind: Kind = "container" if item.kind == "container" else "plate"
        out.append(_reading(entry, kind, item.name, item.cls, item.label))
    return out


# -- fitting and folds -----------------------------------------------------------------


def fit_threshold(readings: Iterable[Reading]) -> float:
    """The review threshold chosen from these readings.

    The designed threshold, raised when needed so that no wrong reading among them
    would be reported confident (`FIT_MARGIN` above the most confident one). Data
    can make the reader more careful, never less.
    """
    wrong = [
        r.confidence
        for r in readings
        if r.read and r.read != r.expected and not r.doubtful and r.check_digit_ok
    ]
    return min(0.99, max(DEFAULT_REVIEW_THRESHOLD, max(wrong, default=0.0) + FIT_MARGIN))


@dataclass(frozen=True)
class Fold:
    """One source held out: the threshold fitted without it, its images judged at it."""

    kind: Kind
    source: str
    threshold: float
    rows: list[Row]


def held_out(readings: list[Reading]) -> list[Fold]:
    """Leave one source out, for each kind: fit on every other image (both kinds)."""
    folds: list[Fold] = []
    kinds: tuple[Kind, ...] = ("container", "plate")
    for kind in kinds:
        sources = sorted({r.source for r in readings if r.kind == kind})
        for source in sources:
            train = [r for r in readings if r.source != source]
            threshold = fit_threshold(train)
            test = [Row(r, threshold) for r in readings if r.kind == kind and r.source == source]
            folds.append(Fold(kind, source, threshold, test))
    return folds


def in_sample(readings: list[Reading]) -> list[Row]:
    threshold = fit_threshold(readings)
    return [Row(r, threshold) for r in readings]


# -- figures -------------------------------------------------------------------------


@dataclass(frozen=True)
class Score:
    images: int
    readable: int
    exact: int
    exact_confident: int
    wrong_confident: int

    @property
    def exact_pct(self) -> float:
        return 100.0 * self.exact / max(1, self.readable)

    @property
    def confident_pct(self) -> float:
        return 100.0 * self.exact_confident / max(1, self.readable)


def score(rows: Iterable[Row]) -> Score:
    items = list(rows)
    readable = [r for r in items if r.reading.readable]
    return Score(
        images=len(items),
        readable=len(readable),
        exact=sum(r.reading.read == r.reading.expected for r in readable),
        exact_confident=sum(r.verdict == "exact" for r in readable),
        wrong_confident=sum(r.verdict == "WRONG" for r in items),
    )


def of_kind(rows: Iterable[Row], kind: Kind) -> list[Row]:
    return [r for r in rows if r.reading.kind == kind]


@dataclass(frozen=True)
class Report:
    photos: list[Reading]
    synthetic: list[Reading]
    folds: list[Fold]
    sample: list[Row]
    synthetic_rows: list[Row]
    threshold: float

    def held_out_rows(self, kind: Kind) -> list[Row]:
        return [row for fold in self.folds if fold.kind == kind for row in fold.rows]


def evaluate(photos: list[Reading], synthetic: list[Reading]) -> Report:
    """Held-out folds and in-sample rows of the photos; the synthetic set judged at the
    threshold fitted on every photo (the synthetic set never fits anything)."""
    threshold = fit_threshold(photos)
    return Report(
        photos,
        synthetic,
        held_out(photos),
        in_sample(photos),
        [Row(r, threshold) for r in synthetic],
        threshold,
    )


# -- the document -----------------------------------------------------------------------


def _short(name: str, width: int = 58) -> str:
    return name if len(name) <= width else "…" + name[-(width - 1) :]


def _pct(n: int, d: int) -> str:
    return f"{n}/{d} ({100.0 * n / max(1, d):.1f} %)"


def _score_cells(s: Score) -> str:
    return (
        f"{s.images} | {_pct(s.exact, s.readable)} | {_pct(s.exact_confident, s.readable)} | "
        f"{s.wrong_confident}"
    )


def _file_table(rows: list[Row], containers: bool) -> list[str]:
    if containers:
        lines = [
            "| file | expected | read | confidence | iso type (exp/read) | verdict |",
            "|---|---|---|---|---|---|",
        ]
        for row in rows:
            r = row.reading
            lines.append(
                f"| {_short(r.file)} | {r.expected} | {r.read or '—'} | {r.confidence:.2f} | "
                f"{r.iso_expected or '—'}/{r.iso_read or '—'} | {row.verdict} |"
            )
        return lines
    lines = ["| file | expected | read | confidence | verdict |", "|---|---|---|---|---|"]
    for row in rows:
        r = row.reading
        lines.append(
            f"| {_short(r.file)} | {r.expected} | {r.read or '—'} | {r.confidence:.2f} | "
            f"{row.verdict} |"
        )
    return lines


def markdown(report: Report) -> str:
    photos_c = [r for r in report.photos if r.kind == "container"]
    photos_p = [r for r in report.photos if r.kind == "plate"]
    n_sources_c = len({r.source for r in photos_c})
    n_sources_p = len({r.source for r in photos_p})
    times = [r.elapsed_ms for r in photos_c]
    lines = [
        "# Gate vision accuracy",
        "",
        "Regenerate with `python -m devices.ocr accuracy` (reads `$BONDWATCH_DATA`, by default",
        "`../shared/data`, in place: most images are not part of the project; and the camera",
        "stub's synthetic set, `firmware_stubs/camera/synthetic.py`). Each image is read once;",
        "the figures below judge those readings.",
        "",
        "- **held out**: leave one source out — each source repository in turn is held out and",
        "  every parameter chosen from data is chosen without it. The reader has one such",
        "  parameter, the review threshold: the designed "
        f"{DEFAULT_REVIEW_THRESHOLD:.2f}, raised when needed above the",
        "  most confident wrong reading of the other sources (`fit_threshold`). Every other",
        "  rule of the reader is fixed by design, not fitted; it was written while looking",
        "  at these photos, which no held-out procedure can undo — hence the synthetic set.",
        "- **in sample**: every photo, the threshold fitted on all of them "
        f"({report.threshold:.2f}).",
        "- **synthetic**: rendered doors and plates, one class per layout or fault, judged at",
        "  the in-sample threshold (they never fit anything).",
        "",
        "Verdicts: `exact` right and confident; `exact (review)` right but flagged for an",
        "officer; `wrong (review)` wrong and flagged; `WRONG` wrong and reported confident",
        "(must never happen); `missed` nothing read.",
        "",
        "| set | images | exact | exact and confident | wrong and confident |",
        "|---|---|---|---|---|",
        f"| **containers, held out** (each of {n_sources_c} sources) | "
        f"{_score_cells(score(report.held_out_rows('container')))} |",
        f"| containers, in sample | {_score_cells(score(of_kind(report.sample, 'container')))} |",
        f"| **plates, held out** (each of {n_sources_p} sources) | "
        f"{_score_cells(score(report.held_out_rows('plate')))} |",
        f"| plates, in sample | {_score_cells(score(of_kind(report.sample, 'plate')))} |",
        f"| synthetic containers | "
        f"{_score_cells(score(of_kind(report.synthetic_rows, 'container')))} |",
        f"| synthetic plates | {_score_cells(score(of_kind(report.synthetic_rows, 'plate')))} |",
        "",
        f"Median time per container photo: {statistics.median(times) if times else 0:.0f} ms",
        "(wall clock on the machine that ran it, which may be shared; docs/gate-vision.md",
        "gives speed as ratios).",
        "",
        "## Held out, source by source",
        "",
        "| kind | source held out | threshold fitted without it | images | exact | "
        "exact and confident | wrong and confident |",
        "|---|---|---|---|---|---|---|",
    ]
    for fold in report.folds:
        lines.append(
            f"| {fold.kind} | {fold.source} | {fold.threshold:.2f} | "
            f"{_score_cells(score(fold.rows))} |"
        )
    lines += [
        "",
        "## Synthetic set, class by class",
        "",
        "| kind | class | images | exact | exact and confident | wrong and confident |",
        "|---|---|---|---|---|---|",
    ]
    classes = dict.fromkeys((r.reading.kind, r.reading.source) for r in report.synthetic_rows)
    for kind, cls in classes:
        rows = [
            r for r in report.synthetic_rows if r.reading.kind == kind and r.reading.source == cls
        ]
        lines.append(f"| {kind} | {cls} | {_score_cells(score(rows))} |")
    lines += ["", "## Container photos", ""]
    lines += _file_table(of_kind(report.sample, "container"), True)
    lines += ["", "## Plate photos", ""]
    lines += _file_table(of_kind(report.sample, "plate"), False)
    lines += ["", "## Synthetic images", ""]
    lines += _file_table(of_kind(report.synthetic_rows, "container"), False)
    lines += _file_table(of_kind(report.synthetic_rows, "plate"), False)[2:]
    return "\n".join(lines) + "\n"


def text_table(rows: list[Row]) -> str:
    out = [f"{'file':60} {'expected':12} {'read':12} {'conf':>5} verdict"]
    for row in rows:
        r = row.reading
        out.append(
            f"{_short(r.file, 60):60} {r.expected:12} {r.read or '-':12} "
            f"{r.confidence:5.2f} {row.verdict}"
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


def headline(report: Report) -> dict[str, float]:
    """The figures printed and tested: held out first."""
    out: dict[str, float] = {"threshold": report.threshold}
    for label, rows in (
        ("containers_held_out", report.held_out_rows("container")),
        ("containers_in_sample", of_kind(report.sample, "container")),
        ("plates_held_out", report.held_out_rows("plate")),
        ("plates_in_sample", of_kind(report.sample, "plate")),
        ("synthetic_containers", of_kind(report.synthetic_rows, "container")),
        ("synthetic_plates", of_kind(report.synthetic_rows, "plate")),
    ):
        s = score(rows)
        out[f"{label}_exact_pct"] = round(s.exact_pct, 1)
        out[f"{label}_confident_pct"] = round(s.confident_pct, 1)
        out[f"{label}_wrong_confident"] = s.wrong_confident
    return out


def run(data_dir: Path, output: Path | None, cache_path: Path | None = None) -> dict[str, float]:
    started = time.perf_counter()
    cache = ReadingCache(GateReader(), cache_path)
    photos = read_photos(data_dir, "container", cache) + read_photos(data_dir, "plate", cache)
    synthetic = read_synthetic(cache)
    cache.save()
    report = evaluate(photos, synthetic)
    print(text_table(report.sample + report.synthetic_rows))
    figures = headline(report)
    print(
        json.dumps(figures),
        f"images read {cache.reads}, total {time.perf_counter() - started:.1f} s",
    )
    if output is not None:
        output.write_text(markdown(report), encoding="utf-8")
    return figures

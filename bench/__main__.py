"""Run every benchmark module, write `bench/results.json` and print a table.

Each `bench/bench_<area>.py` exposes `run() -> dict[str, Metric]` where a metric is
`{"value": number, "unit": str, "target": number | None, "better": "higher" | "lower"}`
(docs/contract.md, Benchmarks). `python -m bench gnss elock` runs only those areas.
"""

from __future__ import annotations

import importlib
import json
import sys
import time
import traceback
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results.json"


def meets(metric: dict[str, Any]) -> str:
    target = metric.get("target")
    if target is None:
        return "—"
    ok = metric["value"] >= target if metric["better"] == "higher" else metric["value"] <= target
    return "yes" if ok else "NO"


def table(results: dict[str, dict[str, Any]]) -> str:
    rows = [("metric", "value", "unit", "target", "better", "meets")]
    for name, m in sorted(results.items()):
        target = "" if m.get("target") is None else f"{m['target']:g}"
        rows.append((name, f"{m['value']:.4g}", m["unit"], target, m["better"], meets(m)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    areas = argv or sorted(p.stem.removeprefix("bench_") for p in HERE.glob("bench_*.py"))
    results: dict[str, dict[str, Any]] = {}
    failed: list[str] = []
    for area in areas:
        started = time.monotonic()
        print(f"bench {area} …", flush=True)
        try:
            module = importlib.import_module(f"bench.bench_{area}")
            results.update(module.run())
        except Exception:
            traceback.print_exc()
            failed.append(area)
        print(f"bench {area} done in {time.monotonic() - started:.1f}s", flush=True)
    RESULTS.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    print()
    print(table(results))
    print(f"\nwritten to {RESULTS}")
    if failed:
        print(f"benchmarks that failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""The README's copies of the generated conformance and accuracy tables stay true."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def table_rows(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("| ")]


def test_readme_carries_the_generated_tables_unchanged() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Conformance and accuracy tables") :]
    copied = set(table_rows(section))
    for name in ("gnss-conformance.md", "gate-vision-accuracy.md"):
        rows = table_rows((ROOT / "docs" / name).read_text(encoding="utf-8"))
        assert len(rows) > 30, f"docs/{name} has lost its table"
        missing = [row for row in rows if row not in copied]
        assert not missing, (
            f"README.md differs from docs/{name} in {len(missing)} rows, e.g. {missing[0]}: "
            "copy the regenerated tables into the README's last section"
        )
    assert "61 real receiver logs" in section and "76 container photos" in section


def test_readme_maps_every_top_level_package() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    box = readme[readme.index("## What is in the box") : readme.index("## How a trip is watched")]
    packages = sorted(
        p.parent.name for p in ROOT.glob("*/__init__.py") if p.parent.name not in {"tests", "bench"}
    )
    assert {"contract", "devices", "edge", "server", "demo", "devtools"} <= set(packages)
    missing = [name for name in packages if f"`{name}/`" not in box]
    assert not missing, f"the README's map of the code does not name {missing}"

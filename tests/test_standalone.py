"""The repository stands alone: no path of a developer's machine in anything it ships.

Paths a deployment chooses (`/etc/bondwatch`, `/var/lib/mosquitto`, `/usr/sbin/…`,
`/dev/ttyUSB0`) are fine; home and work folders of a machine are not: a fresh clone
elsewhere would look for them and fail.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: A machine's own folders: work and home trees.
MACHINE_PATH = re.compile(r"(?<![\w.~-])(/(?:work|home|root|Users)/[\w.-]+|[A-Za-z]:\\Users\\)")
#: Real-world data kept as it came (receiver logs hold the paths of their recorders).
UNCHECKED = ("tests/data/",)


def tracked_text_files() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.decode()
    files = [ROOT / name for name in listed.split("\0") if name]
    return [f for f in files if f.is_file() and not str(f.relative_to(ROOT)).startswith(UNCHECKED)]


def test_no_machine_path_in_any_tracked_file() -> None:
    found: list[str] = []
    for path in tracked_text_files():
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue  # images, fonts
        for number, line in enumerate(text.splitlines(), 1):
            match = MACHINE_PATH.search(line)
            if match:
                found.append(f"{path.relative_to(ROOT)}:{number}: {match.group(0)}")
    assert not found, "paths of a machine in the repository:\n" + "\n".join(found)


def test_the_pattern_finds_what_it_should() -> None:
    root = "/"  # the examples are put together, or this file would hold what it forbids
    assert MACHINE_PATH.search(f'DATA = Path("{root}work/shared/data")')
    assert MACHINE_PATH.search(f"see {root}home/ci/venv/bin/python")
    assert MACHINE_PATH.search("C:" + "\\Users\\ci\\bondwatch")
    assert not MACHINE_PATH.search("/etc/bondwatch/server.yaml and /var/lib/mosquitto/")
    assert not MACHINE_PATH.search("../shared/data beside the repository")

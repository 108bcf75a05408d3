"""No child outlives its parent: a parent killed hard (SIGKILL) takes every child with it.

The broker, the demo's and the tests' child processes (and their own children), and the
server's workers, all started the way the demo starts them (tests/devtools/launcher.py).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from devtools.broker import INSTALL_HINT, find_mosquitto

ROOT = Path(__file__).resolve().parents[2]


def alive(pid: int) -> bool:
    """Running, and not a zombie waiting for a reaper that may never come."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_every_child_dies_with_a_killed_parent(tmp_path):
    if find_mosquitto() is None:
        pytest.fail(INSTALL_HINT)
    launcher = subprocess.Popen(
        [sys.executable, "-m", "tests.devtools.launcher", str(tmp_path)],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        text=True,
        # A session of its own, as the demo's children have: no signal reaches them
        # through the terminal or the process group, only through their parent's death.
        start_new_session=True,
    )
    try:
        assert launcher.stdout is not None
        line = launcher.stdout.readline()
        assert line, f"the launcher printed nothing (exit {launcher.poll()})"
        pids: dict[str, int] = json.loads(line)
        assert set(pids) == {"broker", "child", "grandchild", "worker"}
        for name, pid in pids.items():
            assert alive(pid), f"{name} ({pid}) is not running before the kill"
    finally:
        launcher.kill()  # SIGKILL: no handler, no cleanup
        launcher.wait()

    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline and any(alive(pid) for pid in pids.values()):
        time.sleep(0.05)
    survivors = {name: pid for name, pid in pids.items() if alive(pid)}
    for pid in survivors.values():  # leave nothing behind, whatever the outcome
        os.kill(pid, signal.SIGKILL)
    assert survivors == {}, f"still running 5 s after their parent was killed: {survivors}"

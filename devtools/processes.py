"""Child processes of the demo and the HIL tests: start, wait for a ready line, stop.

Firmware stubs print their port path then `READY`; the server prints its address.
Each child's output goes to a log file in the run directory. Every child dies with the
process that started it, even when that one is killed (`contract.parent_death`): start
children from the main thread (the kernel ties the signal to the starting thread).
"""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

from contract.parent_death import preexec_die_with_parent


class ChildError(RuntimeError):
    pass


class Child:
    """One supervised process. `lines` holds what it printed before it was ready."""

    def __init__(
        self, name: str, argv: list[str], log_dir: Path, env: dict[str, str] | None = None
    ):
        self.name = name
        self.argv = argv
        self.log_path = log_dir / f"{name}.log"
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None
        self.lines: list[str] = []

    @classmethod
    def python(cls, name: str, args: list[str], log_dir: Path, **kw: dict[str, str]) -> Child:
        return cls(name, [sys.executable, *args], log_dir, **kw)

    def start(self, ready: str | None = None, timeout: float = 30.0) -> Child:
        """Start; with `ready`, wait until a line starting with it is printed on stdout."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            self.argv,
            # Never the terminal's input: stubs would read (and steal) what is typed there.
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if ready else log,
            stderr=log,
            env=self.env,
            start_new_session=True,
            preexec_fn=preexec_die_with_parent(),
        )
        log.close()
        if ready:
            self._wait_for(ready, timeout)
        return self

    def _wait_for(self, ready: str, timeout: float) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        buffer = b""
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            while time.monotonic() < deadline:
                if not sel.select(timeout=0.2):
                    if self.proc.poll() is not None:
                        break
                    continue
                chunk = os.read(self.proc.stdout.fileno(), 4096)
                if not chunk:
                    break
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    text = line.decode(errors="replace").rstrip("\r")
                    self.lines.append(text)
                    if text.startswith(ready):
                        self._drain_to_log()
                        return
        self.stop()
        tail = self.log_path.read_text(errors="replace")[-3000:] if self.log_path.exists() else ""
        raise ChildError(
            f"{self.name} did not print {ready!r} within {timeout}s; "
            f"it printed {self.lines!r}; log:\n{tail}"
        )

    def _drain_to_log(self) -> None:
        """Keep reading stdout into the log so the child never blocks on a full pipe."""
        import threading

        assert self.proc is not None and self.proc.stdout is not None
        stdout = self.proc.stdout

        def pump() -> None:
            with self.log_path.open("ab") as log:
                for line in iter(stdout.readline, b""):
                    log.write(line)
                    log.flush()

        threading.Thread(target=pump, name=f"{self.name}-stdout", daemon=True).start()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig: int) -> None:
        if self.running:
            assert self.proc is not None
            self.proc.send_signal(sig)

    def stop(self, timeout: float = 10.0) -> int | None:
        proc = self.proc
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        return proc.returncode

    def kill(self) -> None:
        """SIGKILL the child and its process group: a power cut."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

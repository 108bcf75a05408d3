"""A virtual serial port: the stub holds the master end, the agent opens the slave path."""

from __future__ import annotations

import contextlib
import os
import termios
import tty
from dataclasses import dataclass, field


@dataclass
class VirtualPort:
    """A pty pair. Write device output to `master_fd`; give `path` to the agent.

    The stub keeps its own handle on the slave side open so that the pty survives
    the agent closing and reopening it (as a real port would).
    """

    master_fd: int
    path: str
    _slave_fd: int = field(repr=False)

    @classmethod
    def open(cls) -> VirtualPort:
        master_fd, slave_fd = os.openpty()
        tty.setraw(slave_fd, termios.TCSANOW)
        # Raw on the master side too: no echo of what the agent writes back to it.
        attrs = termios.tcgetattr(slave_fd)
        attrs[3] &= ~termios.ECHO
        termios.tcsetattr(slave_fd, termios.TCSANOW, attrs)
        os.set_blocking(master_fd, False)
        return cls(master_fd=master_fd, path=os.ttyname(slave_fd), _slave_fd=slave_fd)

    def close(self) -> None:
        for fd in (self.master_fd, self._slave_fd):
            with contextlib.suppress(OSError):
                os.close(fd)

    def announce(self) -> None:
        """Print the port path then `READY`, the line tests and the demo wait for."""
        print(self.path, flush=True)
        print("READY", flush=True)

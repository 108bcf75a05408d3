"""A child process that dies with its parent, even when the parent is killed (SIGKILL).

Linux's `prctl(PR_SET_PDEATHSIG)` asks the kernel to signal the calling process when its
parent goes. Called in a child right after the fork (as `subprocess.Popen`'s
`preexec_fn`) or first thing in a child's main function. Nothing on other systems.

The kernel sends the signal when the *thread* that started the child ends, not only the
process: start children from a thread that lives as long as the process (the main
thread, an event loop's thread), never from a short-lived worker thread.
"""

from __future__ import annotations

import ctypes
import functools
import os
import signal
import sys
from collections.abc import Callable

#: `prctl` option (linux/prctl.h).
PR_SET_PDEATHSIG = 1


def die_with_parent(parent_pid: int, sig: int = signal.SIGKILL) -> None:
    """Have `sig` sent to this process when its parent (`parent_pid`) is gone.

    A parent that died before the call (the child was adopted meanwhile) gets the
    signal sent at once. Raises OSError when the kernel refuses.
    """
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, ctypes.c_ulong(sig), 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl(PR_SET_PDEATHSIG): {os.strerror(err)}")
    if os.getppid() != parent_pid:
        os.kill(os.getpid(), sig)


def preexec_die_with_parent(sig: int = signal.SIGKILL) -> Callable[[], None]:
    """A `preexec_fn` for `subprocess.Popen`: the child dies with this process."""
    return functools.partial(die_with_parent, os.getpid(), sig)

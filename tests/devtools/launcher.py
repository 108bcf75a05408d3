"""A parent with every kind of child the demo and the tests start, for test_parent_death.

`python -m tests.devtools.launcher RUN_DIR` starts a Mosquitto broker, a child process
(`devtools.processes.Child`) that starts a child of its own, and a server worker
(`server.child.ChildProcess`) that ignores its pipe, then prints their pids as one JSON
line and waits to be killed.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from multiprocessing.connection import Connection
from pathlib import Path

from devtools.broker import MosquittoBroker
from devtools.processes import Child
from server.child import ChildProcess

#: A child that starts a grandchild with the same launcher, then prints both pids.
NESTED = """
import sys, time
from pathlib import Path
from devtools.processes import Child
grandchild = Child.python(
    "grandchild", ["-c", "import time; print('READY', flush=True); time.sleep(600)"],
    Path(sys.argv[1]),
).start(ready="READY")
print("READY", grandchild.proc.pid, flush=True)
time.sleep(600)
"""


def sleep_forever(spec: object, conn: Connection) -> None:
    """A server worker that never looks at its pipe: only the death signal ends it."""
    time.sleep(600)


async def main(run_dir: Path) -> None:
    broker = MosquittoBroker(run_dir / "broker")
    broker.start()
    nested = Child.python("nested", ["-c", NESTED, str(run_dir)], run_dir).start(ready="READY")
    worker = ChildProcess("worker", sleep_forever, None, on_event=lambda event: None)
    task = asyncio.create_task(worker.run())
    await asyncio.sleep(0)  # the task starts the worker before its first wait
    assert worker.pid is not None and broker._proc is not None and nested.proc is not None
    pids = {
        "broker": broker._proc.pid,
        "child": nested.proc.pid,
        "grandchild": int(nested.lines[-1].split()[1]),
        "worker": worker.pid,
    }
    print(json.dumps(pids), flush=True)
    await task


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1])))

"""External anchors: the chain head copied out of the database into an append-only file.

Whoever can write the database can delete the last entries *and* rewind the chain head
row to match; the chain alone cannot show that. An anchor — `{"seq", "hash", "at"}`
written as one JSON line to a file elsewhere (another host, WORM storage, a syslog) —
can: `verify(engine, anchor)` requires the anchored entry to still exist, unchanged.
Entries written after the newest anchor are protected by the chain and head only.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from contract.ids import format_ts, utc_now
from server.audit.log import head


class AnchorFileError(ValueError):
    pass


def write_anchor(engine: Engine, path: Path) -> dict[str, Any]:
    """Append the current chain head to `path` (created if missing) and flush it to disk."""
    seq, digest = head(engine)
    record = {"seq": seq, "hash": digest, "at": format_ts(utc_now())}
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as out:
        out.write(json.dumps(record, sort_keys=True) + "\n")
        out.flush()
        os.fsync(out.fileno())
    return record


def read_anchor(path: Path) -> tuple[int, str]:
    """The newest anchor (last line) of an anchor file."""
    try:
        lines = [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
    except OSError as err:
        raise AnchorFileError(f"{path}: cannot read: {err.strerror or err}") from err
    if not lines:
        raise AnchorFileError(f"{path}: no anchor in the file")
    try:
        record = json.loads(lines[-1])
        seq, digest = int(record["seq"]), str(record["hash"])
    except (ValueError, KeyError, TypeError) as err:
        raise AnchorFileError(f"{path}: last line is not an anchor record: {err}") from err
    return seq, digest

"""Where checkpoints go, outside the database: append-only files in a folder, or syslog —
and reading them back (a folder, or any text file holding checkpoint lines, such as the
file a syslog server writes)."""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Iterable
from datetime import datetime
from logging.handlers import SysLogHandler
from pathlib import Path

from server.audit.checkpoint import Checkpoint, Damaged, parse_line
from server.audit.config import SyslogSink

FILE_PATTERN = re.compile(r"^checkpoints-\d{4}-\d{2}-\d{2}\.log$")


class CheckpointSourceError(OSError):
    """The checkpoints cannot be read (a missing folder, an unreadable file)."""


def folder_file(folder: Path, at: datetime) -> Path:
    return folder / f"checkpoints-{at:%Y-%m-%d}.log"


def append_to_folder(folder: Path, checkpoint: Checkpoint) -> Path:
    """Append one line to the day's file (O_APPEND), fsync it — and the folder when the
    file is new, so that the file itself survives a power cut."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder_file(folder, checkpoint.at)
    created = not path.exists()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    try:
        os.write(fd, (checkpoint.line() + "\n").encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)
    if created:
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    return path


def send_to_syslog(settings: SyslogSink, checkpoint: Checkpoint) -> None:
    """One RFC 3164 message (facility as configured, severity notice); raises OSError."""
    priority = SysLogHandler.facility_names[settings.facility] * 8 + SysLogHandler.LOG_NOTICE
    message = f"<{priority}>bondwatch-server: {checkpoint.line()}".encode()
    address = settings.address
    host, sep, port = address.rpartition(":")
    if not sep or "/" in address:  # a local socket path
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(address)
            sock.send(message)
        return
    target = (host.strip("[]"), int(port))
    if settings.protocol == "udp":
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.sendto(message, target)
        return
    with socket.create_connection(target, timeout=10) as sock:
        sock.sendall(message + b"\n")  # RFC 6587 non-transparent framing


def _lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as err:
        raise CheckpointSourceError(f"{path}: cannot read: {err.strerror or err}") from err


def _from_file(path: Path) -> Iterable[Checkpoint | Damaged]:
    for number, line in enumerate(_lines(path), start=1):
        found = parse_line(line, f"{path.name}:{number}")
        if found is not None:
            yield found


def read_checkpoints(where: Path, newest: int = 0) -> list[Checkpoint | Damaged]:
    """The newest `newest` checkpoints (0: all), oldest first, from a checkpoint folder or
    from one text file of checkpoint lines among others."""
    if where.is_dir():
        files = sorted(p for p in where.iterdir() if FILE_PATTERN.match(p.name))
    elif where.is_file():
        files = [where]
    else:
        raise CheckpointSourceError(f"{where}: no checkpoint folder or file there")
    found: list[Checkpoint | Damaged] = []
    for path in reversed(files):  # newest day first, until enough are found
        found = [*_from_file(path), *found]
        if newest and len(found) >= newest:
            break
    return found[-newest:] if newest else found

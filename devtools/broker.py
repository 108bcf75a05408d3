"""Run a Mosquitto broker as a child process on a loopback port.

Used by `bondwatch-demo` and by the test suite, always with the production
settings in `config/mosquitto/conf.d/` (persistence, queue sizes) so that what is
tested is what is deployed; only the listener and the data directory differ.

By default anyone may connect (the demo, most tests). With `security=BrokerSecurity(…)`
the broker runs the production access control of `config/mosquitto/mosquitto.conf`
(no anonymous clients, client id = account, the access list; with `tls`, client
certificates as the only credential), with the shipped ACL file unless told otherwise.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Self

from contract.parent_death import preexec_die_with_parent

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED_SETTINGS = PROJECT_ROOT / "config" / "mosquitto" / "conf.d"
PRODUCTION_CONFIG = PROJECT_ROOT / "config" / "mosquitto" / "mosquitto.conf"
SHIPPED_ACL = PROJECT_ROOT / "config" / "mosquitto" / "bondwatch.acl"
#: Production options a local run replaces (its own listener, files and logging).
_LOCAL_OPTIONS = frozenset(
    {
        "per_listener_settings",
        "persistence_location",
        "log_dest",
        "log_type",
        "connection_messages",
        "listener",
        "include_dir",
        "cafile",
        "certfile",
        "keyfile",
        "acl_file",
        "password_file",
    }
)
#: The production listener's certificate options, left out when running with passwords.
_TLS_OPTIONS = frozenset({"tls_version", "require_certificate", "use_identity_as_username"})
INSTALL_HINT = (
    "Mosquitto is not installed: install the distribution's package "
    "(Debian/Ubuntu: `sudo apt-get install mosquitto`), or run `make test`, "
    "which installs it when run as root"
)


class BrokerError(RuntimeError):
    """The broker could not be found or started."""


def find_mosquitto() -> str | None:
    """Path of the `mosquitto` binary (Debian puts it in /usr/sbin), or None."""
    found = shutil.which("mosquitto")
    if found:
        return found
    for candidate in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"):
        if Path(candidate).is_file():
            return candidate
    return None


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _port_open(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


@dataclass(frozen=True)
class BrokerTls:
    """The broker's side of mutual TLS: the site CA, the broker's certificate and key."""

    ca_file: Path
    cert_file: Path
    key_file: Path


@dataclass(frozen=True)
class BrokerSecurity:
    """Run with the production access control (see the module's docstring).

    `password_file` (mosquitto_passwd format) for accounts with passwords, or `tls` for
    the production path, where each client's certificate names its account.
    """

    acl_file: Path = SHIPPED_ACL
    password_file: Path | None = None
    tls: BrokerTls | None = None

    def __post_init__(self) -> None:
        if (self.password_file is None) == (self.tls is None):
            raise ValueError("give password_file or tls (exactly one)")

    def lines(self) -> list[str]:
        """The listener's security options: the production file's, with local paths."""
        lines = []
        for raw in PRODUCTION_CONFIG.read_text(encoding="utf-8").splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            option = line.split()[0]
            if option in _LOCAL_OPTIONS or (self.tls is None and option in _TLS_OPTIONS):
                continue
            lines.append(line)
        lines.append(f"acl_file {self.acl_file}")
        if self.tls is not None:
            lines += [
                f"cafile {self.tls.ca_file}",
                f"certfile {self.tls.cert_file}",
                f"keyfile {self.tls.key_file}",
            ]
        else:
            lines.append(f"password_file {self.password_file}")
        return lines


class MosquittoBroker:
    """One broker with its own port, config and persistence directory.

    `stop()` and `start()` again keep the port and the persisted sessions, as a
    real broker restart would.
    """

    def __init__(
        self,
        workdir: Path,
        port: int | None = None,
        host: str = "127.0.0.1",
        extra: str = "",
        security: BrokerSecurity | None = None,
    ) -> None:
        binary = find_mosquitto()
        if binary is None:
            raise BrokerError(INSTALL_HINT)
        self.binary = binary
        self.host = host
        self.port = port or free_port(host)
        self.workdir = workdir
        self.extra = extra
        self.security = security
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def config_path(self) -> Path:
        return self.workdir / "mosquitto.conf"

    @property
    def log_path(self) -> Path:
        return self.workdir / "mosquitto.log"

    def _write_config(self) -> None:
        data = self.workdir / "data"
        data.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(
            "\n".join(
                [
                    "# generated by devtools.broker for a local run",
                    # Started as root, Mosquitto drops to the `mosquitto` user, which cannot
                    # write a data directory of root's: persistence would silently save nothing.
                    "user root" if os.geteuid() == 0 else "",
                    "per_listener_settings false",
                    f"persistence_location {data}/",
                    f"log_dest file {self.log_path}",
                    "log_type error",
                    "log_type warning",
                    "log_type notice",
                    "log_type information",
                    f"listener {self.port} {self.host}",
                    *(["allow_anonymous true"] if self.security is None else self.security.lines()),
                    self.extra,
                    f"include_dir {SHARED_SETTINGS}",
                    "",
                ]
            )
        )

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 10.0) -> None:
        if self.running:
            return
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._write_config()
        self._proc = subprocess.Popen(
            [self.binary, "-c", str(self.config_path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            preexec_fn=preexec_die_with_parent(),  # no broker outlives its test or demo
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                err = self._proc.stderr.read().decode(errors="replace") if self._proc.stderr else ""
                log_text = self.log_path.read_text() if self.log_path.exists() else ""
                raise BrokerError(
                    f"mosquitto exited with {self._proc.returncode} on port {self.port}: "
                    f"{err.strip()} {log_text[-2000:]}"
                )
            if _port_open(self.host, self.port):
                log.info("mosquitto listening on %s:%d", self.host, self.port)
                return
            time.sleep(0.05)
        self.stop()
        raise BrokerError(f"mosquitto did not listen on {self.host}:{self.port} in {timeout}s")

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stderr:
            proc.stderr.close()

    def kill(self) -> None:
        """Stop without letting the broker save its state (a crash)."""
        proc, self._proc = self._proc, None
        if proc is not None:
            proc.kill()
            proc.wait()
            if proc.stderr:
                proc.stderr.close()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

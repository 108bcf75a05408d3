"""The server's audit checkpoints: sign the chain head on a timer and write it outside
the database; verify the chain against the newest checkpoints."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import Engine

from contract.ids import utc_now
from contract.signing import KeyFileError, load_private_key, load_public_key
from server.audit.chain import Verification
from server.audit.checkpoint import Checkpoint, key_id, sign_checkpoint
from server.audit.config import CheckpointSettings
from server.audit.log import chain_state, verify
from server.audit.sinks import (
    CheckpointSourceError,
    append_to_folder,
    read_checkpoints,
    send_to_syslog,
)
from server.metrics import Metrics

log = logging.getLogger(__name__)

WRITTEN = "bondwatch_audit_checkpoints_total"


class AuditCheckpoints:
    def __init__(
        self,
        settings: CheckpointSettings,
        public_key: Ed25519PublicKey,
        private_key: Ed25519PrivateKey | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.settings = settings
        self.public_key = public_key
        self._private_key = private_key
        self._metrics = metrics
        self._failing = False
        if metrics is not None:
            metrics.describe(WRITTEN, "signed audit checkpoints written, by outcome")

    @classmethod
    def for_server(
        cls,
        settings: CheckpointSettings,
        command_key_file: Path | None = None,
        metrics: Metrics | None = None,
    ) -> AuditCheckpoints:
        """Load the audit key (to sign). Refuses the command signing key: a key that
        signs gate commands must not also vouch for the audit log."""
        private = load_private_key(settings.key_file)
        public = private.public_key()
        if settings.public_key_file is not None:
            configured = load_public_key(settings.public_key_file)
            if key_id(configured) != key_id(public):
                raise KeyFileError(
                    f"{settings.public_key_file} is not the public key of {settings.key_file}"
                )
        if command_key_file is not None:
            command = load_private_key(command_key_file).public_key()
            if key_id(command) == key_id(public):
                raise KeyFileError(
                    f"audit.checkpoints.key_file {settings.key_file} is the command signing "
                    "key (signing_key_file): give the audit log its own key "
                    "(bondwatch-server audit keygen)"
                )
        return cls(settings, public, private, metrics)

    @classmethod
    def for_verifying(
        cls, settings: CheckpointSettings, public_key_file: Path | None = None
    ) -> AuditCheckpoints:
        """Only the public key: `public_key_file`, else the configured one, else derived
        from the configured private key."""
        if public_key_file is not None:
            return cls(settings, load_public_key(public_key_file))
        if settings.public_key_file is not None:
            return cls(settings, load_public_key(settings.public_key_file))
        return cls(settings, load_private_key(settings.key_file).public_key())

    def source(self) -> Path | None:
        """Where the checkpoints are read back: the folder, or syslog's `read_from`."""
        if self.settings.folder is not None:
            return self.settings.folder
        return self.settings.syslog.read_from if self.settings.syslog is not None else None

    def write(self, engine: Engine) -> Checkpoint:
        """Sign the chain head now and write it to every configured sink (each tried even
        when another fails; the first failure is then raised)."""
        if self._private_key is None:
            raise KeyFileError("no audit private key loaded: checkpoints cannot be signed")
        seq, digest, count = chain_state(engine)
        checkpoint = sign_checkpoint(seq, digest, count, utc_now(), self._private_key)
        failure: OSError | None = None
        if self.settings.folder is not None:
            try:
                append_to_folder(self.settings.folder, checkpoint)
            except OSError as err:
                failure = err
        if self.settings.syslog is not None:
            try:
                send_to_syslog(self.settings.syslog, checkpoint)
            except OSError as err:
                failure = failure or err
        if failure is not None:
            raise failure
        return checkpoint

    def verify(self, engine: Engine, source: Path | None = None) -> Verification:
        """The chain, and the chain against the newest checkpoints of `source` (by default
        the configured one). The checkpoints are read first: one written meanwhile must
        not be newer than the chain read. Raises CheckpointSourceError when there is no
        source or it cannot be read."""
        where = source or self.source()
        if where is None:
            raise CheckpointSourceError(
                "checkpoints go to syslog only and syslog.read_from is not set: "
                "pass the file the syslog server writes (--checkpoints FILE)"
            )
        checkpoints = read_checkpoints(where, self.settings.verify_newest)
        return verify(engine, checkpoints=checkpoints, checkpoint_key=self.public_key)

    async def _write_logged(self, engine: Engine) -> None:
        try:
            checkpoint = await asyncio.to_thread(self.write, engine)
        except Exception as err:  # a full disk, a syslog outage, a lost database
            if not self._failing:
                log.error("audit checkpoint not written: %s: %s", err.__class__.__name__, err)
            self._failing = True
            if self._metrics is not None:
                self._metrics.inc(WRITTEN, outcome="failed")
            return
        if self._failing:
            log.info("audit checkpoints written again (seq %d)", checkpoint.seq)
        self._failing = False
        if self._metrics is not None:
            self._metrics.inc(WRITTEN, outcome="written")
        log.debug("audit checkpoint: seq %d, %d entries", checkpoint.seq, checkpoint.count)

    async def run_forever(self, engine: Engine) -> None:
        """A checkpoint at start, then every `interval_s`, and a last one when cancelled."""
        try:
            while True:
                await self._write_logged(engine)
                await asyncio.sleep(self.settings.interval_s)
        except asyncio.CancelledError:
            await asyncio.shield(self._write_logged(engine))
            raise

"""The append-only, hash-chained audit log of every change made by a person or an
integration: declarations, releases, alarm actions, overrides, configuration."""

from server.audit.chain import GENESIS_HASH, AuditEntry, Verification, verify_chain
from server.audit.log import AuditQuery, append, head, list_entries, verify
from server.audit.transaction import snapshot, write_transaction

__all__ = [
    "GENESIS_HASH",
    "AuditEntry",
    "AuditQuery",
    "Verification",
    "append",
    "head",
    "list_entries",
    "snapshot",
    "verify",
    "verify_chain",
    "write_transaction",
]

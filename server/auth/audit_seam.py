"""Accounts' audit entries: logins, failed logins, lockouts, account and token changes.

Each goes into the hash-chained audit log (`server.audit`) in the caller's transaction,
so an account change and its record commit together or not at all.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection


def audit_hook(
    conn: Connection,
    actor: str,
    action: str,
    object_type: str,
    object_id: str,
    details: dict[str, Any],
) -> None:
    """Record one audit entry in the caller's transaction."""
    from server.audit import append  # server.audit imports the store, which imports auth

    append(conn, actor, action, object_type, object_id, details)

"""The one place where account events reach the audit log.

`audit_hook` is called inside the transaction that made the change (so the audit entry and
the change commit together). Until the lead wires the audit log it does nothing; wire it with
`set_audit_hook(server.audit.append)` (any function of the same signature) at start-up.

Actions written here: `auth.login`, `auth.login_failed`, `auth.locked`, `auth.logout`,
`auth.password_changed`, `user.create`, `user.update`, `token.issue`, `token.revoke`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection

log = logging.getLogger(__name__)

AuditHook = Callable[[Connection, str, str, str, str, dict[str, Any]], None]

_hook: AuditHook | None = None


def set_audit_hook(hook: AuditHook | None) -> None:
    """Install (or with None remove) the function that records audit entries."""
    global _hook
    _hook = hook


def audit_hook(
    conn: Connection,
    actor: str,
    action: str,
    object_type: str,
    object_id: str,
    details: dict[str, Any],
) -> None:
    """Record one audit entry in the caller's transaction; a no-op until a hook is set."""
    if _hook is None:
        log.debug("audit (not wired): %s %s %s/%s", actor, action, object_type, object_id)
        return
    _hook(conn, actor, action, object_type, object_id, details)

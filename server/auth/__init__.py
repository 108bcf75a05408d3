"""Accounts, roles, sessions, CSRF, login rate limits and API tokens.

Other routers use `current_account` and `require(...)` from `server.auth.dependencies`.
"""

from server.auth.accounts import Account, AccountStore
from server.auth.config import AuthSettings
from server.auth.dependencies import current_account, guard, require
from server.auth.roles import ROLES, Role

__all__ = [
    "ROLES",
    "Account",
    "AccountStore",
    "AuthSettings",
    "Role",
    "current_account",
    "guard",
    "require",
]

"""FastAPI dependencies: who is calling (`current_account`), role checks (`require`), and
the route policy (`guard`) for routers that predate accounts.

A request proves its account with either
- `Authorization: Bearer bwt_…` (integration accounts; no CSRF token needed), or
- the session cookie; then every state-changing request (not GET/HEAD/OPTIONS) must carry
  the session's CSRF token in `X-CSRF-Token`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from fastapi import Request

from contract.ids import utc_now
from server.api.errors import ApiError
from server.auth import credentials
from server.auth.accounts import Account, AccountStore
from server.auth.config import AuthSettings
from server.auth.policy import READ_METHODS, device_may_call, roles_for
from server.auth.ratelimit import ClientLimiter
from server.auth.roles import Role, holds

CSRF_HEADER = "X-CSRF-Token"


@dataclass
class AuthContext:
    """What the auth dependencies need; kept on `app.state.auth`."""

    settings: AuthSettings
    accounts: AccountStore
    clients: ClientLimiter


def auth_context(request: Request) -> AuthContext:
    found: AuthContext = request.app.state.auth
    return found


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _unauthenticated(message: str = "log in first") -> ApiError:
    return ApiError(401, "unauthenticated", message)


async def _authenticate(request: Request) -> Account:
    ctx = auth_context(request)
    now = utc_now()
    header = request.headers.get("authorization", "")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise _unauthenticated("use `Authorization: Bearer <token>`")
        account = await asyncio.to_thread(ctx.accounts.token_account, token.strip(), now)
        if account is None:
            raise _unauthenticated("the API token is unknown, revoked or expired")
        return account
    secret = request.cookies.get(ctx.settings.cookie_name)
    if not secret:
        raise _unauthenticated()
    account = await asyncio.to_thread(ctx.accounts.session_account, secret, now)
    if account is None:
        raise _unauthenticated("the session has ended; log in again")
    if request.method.upper() not in READ_METHODS:
        sent = request.headers.get(CSRF_HEADER, "")
        if not sent or account.csrf_token is None or not credentials.same(sent, account.csrf_token):
            raise ApiError(403, "csrf", f"missing or wrong {CSRF_HEADER} header for this session")
    return account


async def current_account(request: Request) -> Account:
    """The calling account (401 without one; 403 on a missing CSRF token). Cached per request."""
    cached: Account | None = getattr(request.state, "account", None)
    if cached is not None:
        return cached
    account = await _authenticate(request)
    if account.role == "device":
        route = request.scope.get("route")
        path = getattr(route, "path", request.url.path)
        if not device_may_call(request.method, path):
            raise ApiError(
                403,
                "forbidden",
                f"{account.username} is a device account: it may only upload its passages' images",
            )
    request.state.account = account
    return account


def check_role(account: Account, roles: tuple[Role, ...] | tuple[str, ...]) -> None:
    if roles and not holds(account.role, tuple(roles)):
        raise ApiError(
            403,
            "forbidden",
            f"this needs the role {' or '.join(roles)}; {account.username} is {account.role}",
        )


def require(*roles: Role) -> Callable[[Request], Awaitable[Account]]:
    """Dependency: the calling account, which must hold one of `roles`.

    `Depends(require("officer"))` admits officers and supervisors (who hold the officer's
    rights); with no roles, any logged-in account.
    """

    async def dependency(request: Request) -> Account:
        account = await current_account(request)
        check_role(account, roles)
        return account

    dependency.__name__ = f"require_{'_'.join(roles) or 'account'}"
    return dependency


async def guard(request: Request) -> None:
    """Router dependency applying `server.auth.policy` to the route that matched."""
    route = request.scope.get("route")
    path = getattr(route, "path", request.url.path)
    roles = roles_for(request.method, path)
    if roles is None:
        return
    check_role(await current_account(request), roles)

"""REST for accounts: `/api/v1/auth/*` (login, logout, me, password) and, for admins,
`/api/v1/users` (accounts) and `/api/v1/users/{username}/tokens` (integration API tokens)."""

from __future__ import annotations

import asyncio
import math
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from contract.ids import utc_now
from contract.version import API_PREFIX
from server.api.errors import ApiError, error_body
from server.auth.accounts import Account, AccountStore, LoginOk
from server.auth.config import AuthSettings
from server.auth.dependencies import (
    AuthContext,
    auth_context,
    client_address,
    current_account,
    require,
)
from server.auth.ratelimit import ClientLimiter
from server.auth.roles import Role
from server.auth.zones import DEFAULT_ZONE

auth_router = APIRouter(prefix=f"{API_PREFIX}/auth", tags=["auth"])
users_router = APIRouter(prefix=f"{API_PREFIX}/users", tags=["users"])

Username = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{2,64}$", description="login name")]
Admin = Annotated[Account, Depends(require("admin"))]
Me = Annotated[Account, Depends(current_account)]


class LoginIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: Annotated[str, Field(min_length=1, max_length=64)]
    password: Annotated[str, Field(min_length=1, max_length=256)]


class PasswordIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    current_password: Annotated[str, Field(min_length=1, max_length=256)]
    new_password: Annotated[str, Field(min_length=1, max_length=256)]


class AccountOut(BaseModel):
    username: str
    display_name: str
    role: Role
    disabled: bool
    created_at: datetime
    last_login_at: datetime | None
    locked_until: datetime | None
    has_password: bool
    time_zone: str | None = Field(
        default=None, description="the account's own IANA time zone; null = the console's"
    )


class MeOut(BaseModel):
    account: AccountOut
    time_zone: str = Field(
        description="the IANA zone the console shows this account's times in: its own, "
        "else the console's `time_zone` (Asia/Shanghai unless configured)"
    )
    csrf_token: str | None = Field(
        description="send it as X-CSRF-Token on every state-changing request of this session"
    )
    via: str
    session_idle_s: int


class LoginOut(MeOut):
    expires_at: datetime


class MePatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    time_zone: Annotated[str | None, Field(max_length=64)] = Field(
        description="an IANA zone name (e.g. Europe/Berlin), or null for the console's default"
    )


class AccountIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: Username
    display_name: Annotated[str, Field(min_length=1, max_length=200)]
    role: Role
    password: Annotated[str | None, Field(max_length=256)] = Field(
        default=None, description="required for people, absent for integration accounts"
    )


class AccountPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    display_name: Annotated[str | None, Field(min_length=1, max_length=200)] = None
    role: Role | None = None
    disabled: bool | None = None
    password: Annotated[str | None, Field(max_length=256)] = Field(
        default=None, description="a new password (ends the account's sessions)"
    )
    unlock: bool = Field(default=False, description="lift a login lockout")


class TokenIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(min_length=1, max_length=100, description="what uses it")]
    expires_days: Annotated[int | None, Field(ge=1)] = Field(
        default=None, description="lifetime in days (default and most: auth.token_max_days)"
    )


class TokenOut(BaseModel):
    token_id: str
    name: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None


class IssuedTokenOut(TokenOut):
    token: str = Field(description="the Bearer token; shown once, only its hash is kept")


def _out(account: Account) -> AccountOut:
    return AccountOut.model_validate(account.public())


def _default_zone(request: Request) -> str:
    settings = getattr(request.app.state, "console_settings", None)
    zone = getattr(settings, "time_zone", None)
    return zone if isinstance(zone, str) else DEFAULT_ZONE


def _me(account: Account, ctx: AuthContext, request: Request) -> dict[str, Any]:
    return {
        "account": _out(account),
        "time_zone": account.time_zone or _default_zone(request),
        "csrf_token": account.csrf_token,
        "via": account.via,
        "session_idle_s": ctx.settings.session_idle_min * 60,
    }


def _secure(request: Request, settings: AuthSettings) -> bool:
    if settings.cookie_secure == "auto":
        return request.url.scheme == "https"
    return settings.cookie_secure == "always"


def _same_origin(request: Request) -> bool:
    origin = request.headers.get("origin")
    if not origin or origin == "null":
        return origin is None
    return urlsplit(origin).netloc == request.headers.get("host", "")


def _too_many(message: str, wait: timedelta | float) -> JSONResponse:
    seconds = wait.total_seconds() if isinstance(wait, timedelta) else wait
    return JSONResponse(
        error_body("rate_limited", message),
        status_code=429,
        headers={"Retry-After": str(max(1, math.ceil(seconds)))},
    )


@auth_router.post("/login", response_model=LoginOut, responses={401: {}, 403: {}, 429: {}})
async def login(body: LoginIn, request: Request, response: Response) -> Any:
    """Check the password and open a session (cookie); answers the CSRF token to use."""
    ctx = auth_context(request)
    if not _same_origin(request):
        raise ApiError(403, "csrf", "login from another site's page is refused")
    client = client_address(request)
    now = utc_now()
    wait = ctx.clients.retry_after(client, now)
    if wait is not None:
        return _too_many("too many failed logins from this address; wait and try again", wait)
    result = await asyncio.to_thread(
        ctx.accounts.login,
        body.username,
        body.password,
        now,
        client,
        request.headers.get("user-agent"),
    )
    if not isinstance(result, LoginOk):
        ctx.clients.failed(client, now)
        # A locked account gets the answer of an unknown one or a wrong password — same
        # status, body and time (the account store spends a password check on each) —
        # so that the answer never tells whether an account exists. The address's own
        # limit (429 above) is what slows a guesser down.
        raise ApiError(401, "bad_credentials", "wrong username or password")
    response.set_cookie(
        ctx.settings.cookie_name,
        result.session_secret,
        max_age=int(ctx.settings.session_absolute_h * 3600),
        path="/",
        httponly=True,
        samesite="strict",
        secure=_secure(request, ctx.settings),
    )
    response.headers["Cache-Control"] = "no-store"
    account = replace(result.account, via="session", csrf_token=result.csrf_token)
    return {**_me(account, ctx, request), "expires_at": result.expires_at}


@auth_router.post("/logout", status_code=204)
async def logout(request: Request, account: Me) -> Response:
    ctx = auth_context(request)
    await asyncio.to_thread(ctx.accounts.logout, account, utc_now())
    response = Response(status_code=204)
    response.delete_cookie(
        ctx.settings.cookie_name,
        path="/",
        httponly=True,
        samesite="strict",
        secure=_secure(request, ctx.settings),
    )
    return response


@auth_router.get("/me", response_model=MeOut)
async def me(request: Request, account: Me, response: Response) -> Any:
    """The logged-in account and this session's CSRF token."""
    response.headers["Cache-Control"] = "no-store"
    return _me(account, auth_context(request), request)


@auth_router.patch("/me", response_model=MeOut)
async def update_me(body: MePatch, request: Request, account: Me, response: Response) -> Any:
    """An account's own settings: its time zone for the times the console shows."""
    ctx = auth_context(request)
    changed = await asyncio.to_thread(
        ctx.accounts.set_time_zone, account, body.time_zone, utc_now()
    )
    kept = replace(changed, via=account.via, session_id=account.session_id,
                   csrf_token=account.csrf_token, token_id=account.token_id)  # fmt: skip
    response.headers["Cache-Control"] = "no-store"
    return _me(kept, ctx, request)


@auth_router.post("/password", status_code=204)
async def change_password(body: PasswordIn, request: Request, account: Me) -> Response:
    """Change one's own password; ends the account's other sessions."""
    ctx = auth_context(request)
    if account.via != "session":
        raise ApiError(403, "forbidden", "change a password from a console session")
    ok = await asyncio.to_thread(
        ctx.accounts.change_own_password,
        account,
        body.current_password,
        body.new_password,
        utc_now(),
    )
    if not ok:
        raise ApiError(403, "bad_credentials", "the current password is wrong", "current_password")
    return Response(status_code=204)


@users_router.get("", response_model=list[AccountOut])
async def list_users(request: Request, _: Admin) -> list[AccountOut]:
    accounts = await asyncio.to_thread(auth_context(request).accounts.list_accounts)
    return [_out(a) for a in accounts]


@users_router.post("", response_model=AccountOut, status_code=201)
async def create_user(body: AccountIn, request: Request, admin: Admin) -> AccountOut:
    account = await asyncio.to_thread(
        auth_context(request).accounts.create,
        admin.username,
        body.username,
        body.display_name,
        body.role,
        body.password,
        utc_now(),
    )
    return _out(account)


@users_router.get("/{username}", response_model=AccountOut)
async def get_user(username: str, request: Request, _: Admin) -> AccountOut:
    account = await asyncio.to_thread(auth_context(request).accounts.get, username)
    if account is None:
        raise ApiError(404, "not_found", f"no account {username!r}", "username")
    return _out(account)


@users_router.patch("/{username}", response_model=AccountOut)
async def update_user(
    username: str, body: AccountPatch, request: Request, admin: Admin
) -> AccountOut:
    """Rename, change role, disable/enable, reset the password, or unlock an account."""
    account = await asyncio.to_thread(
        lambda: auth_context(request).accounts.update(
            admin.username,
            username,
            utc_now(),
            display_name=body.display_name,
            role=body.role,
            disabled=body.disabled,
            password=body.password,
            unlock=body.unlock,
        )
    )
    return _out(account)


@users_router.get("/{username}/tokens", response_model=list[TokenOut])
async def list_tokens(username: str, request: Request, _: Admin) -> list[TokenOut]:
    rows = await asyncio.to_thread(auth_context(request).accounts.list_tokens, username)
    return [TokenOut.model_validate(r) for r in rows]


@users_router.post("/{username}/tokens", response_model=IssuedTokenOut, status_code=201)
async def issue_token(
    username: str, body: TokenIn, request: Request, admin: Admin
) -> IssuedTokenOut:
    """Issue a Bearer token for an integration account (the declaration system)."""
    ctx = auth_context(request)
    days = body.expires_days or ctx.settings.token_max_days
    if days > ctx.settings.token_max_days:
        raise ApiError(
            422,
            "invalid",
            f"at most {ctx.settings.token_max_days} days (auth.token_max_days)",
            "expires_days",
        )
    now = utc_now()
    token, record = await asyncio.to_thread(
        ctx.accounts.issue_token,
        admin.username,
        username,
        body.name,
        now + timedelta(days=days),
        now,
    )
    return IssuedTokenOut.model_validate({**record, "token": token})


@users_router.delete("/{username}/tokens/{token_id}", status_code=204)
async def revoke_token(username: str, token_id: str, request: Request, admin: Admin) -> Response:
    await asyncio.to_thread(
        auth_context(request).accounts.revoke_token, admin.username, username, token_id, utc_now()
    )
    return Response(status_code=204)


def install_auth(app: FastAPI, store_engine: Any, settings: AuthSettings) -> AuthContext:
    """Keep the auth context on the app and add the auth and user routers."""
    ctx = AuthContext(
        settings=settings,
        accounts=AccountStore(store_engine, settings),
        clients=ClientLimiter(settings.client_max_failures, settings.client_window_s),
    )
    app.state.auth = ctx
    app.include_router(auth_router)
    app.include_router(users_router)
    return ctx

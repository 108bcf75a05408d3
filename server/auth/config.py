"""Settings of accounts, sessions, login rate limits and API tokens (`auth:` in the server file).

The lead adds it to `ServerConfig` as
`auth: AuthSettings = Field(default_factory=AuthSettings, description="accounts and sessions")`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class AuthSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["local"] = Field(
        default="local", description="account source; `local` = accounts kept in the store"
    )
    session_idle_min: int = Field(
        default=30, ge=1, le=24 * 60, description="a session ends after this many idle minutes"
    )
    session_absolute_h: float = Field(
        default=12, gt=0, le=7 * 24, description="a session ends this many hours after login"
    )
    cookie_name: str = Field(
        default="bw_session", pattern=r"^[A-Za-z0-9_-]{1,40}$", description="session cookie name"
    )
    cookie_secure: Literal["auto", "always", "never"] = Field(
        default="auto",
        description="the cookie's Secure flag: `always` behind TLS (also behind a TLS proxy), "
        "`auto` = when the request came over HTTPS, `never` for plain-HTTP test benches only",
    )
    lockout_threshold: int = Field(
        default=5, ge=1, le=100, description="failed logins of one account before it is locked"
    )
    lockout_base_s: int = Field(
        default=30, ge=1, le=3600, description="first lockout; doubles with each further failure"
    )
    lockout_max_s: int = Field(
        default=900, ge=1, le=86400, description="longest lockout of an account"
    )
    client_max_failures: int = Field(
        default=20,
        ge=1,
        le=10_000,
        description="failed logins from one client address within `client_window_s` before "
        "that address must wait",
    )
    client_window_s: int = Field(
        default=600, ge=1, le=86400, description="window of the per-address login limit"
    )
    password_min_length: int = Field(
        default=10, ge=8, le=128, description="shortest password accepted for a new password"
    )
    token_max_days: int = Field(
        default=365, ge=1, le=3650, description="longest lifetime of an integration API token"
    )

    @model_validator(mode="after")
    def _lockout_order(self) -> AuthSettings:
        if self.lockout_max_s < self.lockout_base_s:
            raise ValueError(
                f"lockout_max_s ({self.lockout_max_s}) is shorter than lockout_base_s "
                f"({self.lockout_base_s}): raise lockout_max_s"
            )
        return self

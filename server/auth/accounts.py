"""Accounts, sessions and API tokens in the store (SQLAlchemy Core, SQLite or PostgreSQL).

Every change writes its audit entry through `audit_hook` inside the same transaction.
Blocking: call from a worker thread (`asyncio.to_thread`) in request handlers.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, Literal

from sqlalchemy import Connection, Engine, func, select, update
from sqlalchemy.exc import IntegrityError

from server.auth import credentials
from server.auth.audit_seam import audit_hook
from server.auth.config import AuthSettings
from server.auth.ratelimit import lockout_for
from server.auth.roles import PERSON_ROLES, TOKEN_ROLES, Role
from server.auth.zones import zone_problem
from server.store import StoreError, schema
from server.store.database import as_utc
from server.store.writer_lock import write_transaction

log = logging.getLogger(__name__)

A = schema.accounts.c
S = schema.auth_sessions.c
T = schema.api_tokens.c

#: How often a session's last-seen time is written (at most); bounds writes of polling pages.
TOUCH_EVERY = timedelta(seconds=30)


#: Names no account may take: `system` signs the rules' own alarm entries.
RESERVED_NAMES = frozenset({"system"})


#: The roles an alarm may be assigned to.
ALARM_ROLES: Final = ("officer", "supervisor")


@dataclass(frozen=True, slots=True)
class Account:
    """An account as the API sees it, and how this request proved it."""

    account_id: int
    username: str
    display_name: str
    role: Role
    disabled: bool
    created_at: datetime
    last_login_at: datetime | None
    locked_until: datetime | None
    has_password: bool
    time_zone: str | None = None  # the officer's own; None = the console's `time_zone`
    via: Literal["session", "token", "none"] = "none"
    session_id: str | None = None
    csrf_token: str | None = None
    token_id: str | None = None

    @property
    def takes_alarms(self) -> bool:
        """An alarm may be assigned to it: an enabled officer or supervisor."""
        return not self.disabled and self.role in ALARM_ROLES

    def public(self) -> dict[str, Any]:
        return {
            "username": self.username,
            "display_name": self.display_name,
            "role": self.role,
            "disabled": self.disabled,
            "created_at": self.created_at,
            "last_login_at": self.last_login_at,
            "locked_until": self.locked_until,
            "has_password": self.has_password,
            "time_zone": self.time_zone,
        }


@dataclass(frozen=True, slots=True)
class LoginOk:
    account: Account
    session_secret: str
    csrf_token: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class LoginRefused:
    """`locked_for` is set when the account is (now) locked — for the log and the tests:
    the API answers a locked account exactly as an unknown one (server.api.auth.login)."""

    locked_for: timedelta | None


def _account(row: Any, **how: Any) -> Account:
    m = row._mapping
    return Account(
        account_id=m["account_id"],
        username=m["username"],
        display_name=m["display_name"],
        role=m["role"],
        disabled=bool(m["disabled"]),
        created_at=as_utc(m["created_at"]),  # type: ignore[arg-type]
        last_login_at=as_utc(m["last_login_at"]),
        locked_until=as_utc(m["locked_until"]),
        has_password=m["password_hash"] is not None,
        time_zone=m["time_zone"],
        **how,
    )


def _token(row: Any) -> dict[str, Any]:
    m = row._mapping
    return {
        "token_id": m["token_id"],
        "name": m["name"],
        "created_at": as_utc(m["created_at"]),
        "expires_at": as_utc(m["expires_at"]),
        "revoked_at": as_utc(m["revoked_at"]),
        "last_used_at": as_utc(m["last_used_at"]),
    }


class AccountStore:
    def __init__(self, engine: Engine, settings: AuthSettings) -> None:
        self.engine = engine
        self.settings = settings

    # ---- accounts ---------------------------------------------------------------------

    def get(self, username: str) -> Account | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(schema.accounts).where(A.username == username)).first()
        return _account(row) if row else None

    def list_accounts(self) -> list[Account]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(schema.accounts).order_by(A.username)).all()
        return [_account(r) for r in rows]

    def count(self, role: Role | None = None) -> int:
        query = select(func.count()).select_from(schema.accounts).where(A.disabled.is_(False))
        if role is not None:
            query = query.where(A.role == role)
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def create(
        self,
        actor: str,
        username: str,
        display_name: str,
        role: Role,
        password: str | None,
        now: datetime,
    ) -> Account:
        if username.lower() in RESERVED_NAMES:
            raise StoreError(
                "invalid", f"{username!r} is reserved for the server's own entries", "username"
            )
        if role in PERSON_ROLES and password is None:
            raise StoreError("invalid", f"a {role} account needs a password", "password")
        if role not in PERSON_ROLES and password is not None:
            raise StoreError("invalid", f"{role} accounts sign in with API tokens only", "password")
        if password is not None:
            problem = credentials.password_problem(
                password, username, self.settings.password_min_length
            )
            if problem:
                raise StoreError("invalid", problem, "password")
        hashed = credentials.hash_password(password) if password is not None else None
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    schema.accounts.insert().values(
                        username=username,
                        display_name=display_name,
                        role=role,
                        password_hash=hashed,
                        disabled=False,
                        created_at=now,
                        updated_at=now,
                        password_changed_at=now if hashed else None,
                        failed_logins=0,
                    )
                )
                audit_hook(
                    conn,
                    actor,
                    "user.create",
                    "account",
                    username,
                    {"role": role, "display_name": display_name},
                )
        except IntegrityError as err:
            raise StoreError(
                "conflict", f"account {username!r} already exists", "username"
            ) from err
        log.info("account %s (%s) created by %s", username, role, actor)
        found = self.get(username)
        assert found is not None
        return found

    def update(
        self,
        actor: str,
        username: str,
        now: datetime,
        *,
        display_name: str | None = None,
        role: Role | None = None,
        disabled: bool | None = None,
        password: str | None = None,
        unlock: bool = False,
    ) -> Account:
        """Change an account; ends its sessions when its role, password or access changes."""
        current = self.get(username)
        if current is None:
            raise StoreError("not_found", f"no account {username!r}", "username")
        values: dict[str, Any] = {}
        changed: dict[str, Any] = {}
        if display_name is not None and display_name != current.display_name:
            values["display_name"] = changed["display_name"] = display_name
        if role is not None and role != current.role:
            if (role in PERSON_ROLES) != (current.role in PERSON_ROLES) or "device" in (
                role,
                current.role,
            ):
                raise StoreError(
                    "invalid",
                    f"a {current.role} account cannot become a {role} account: "
                    "create a new account",
                    "role",
                )
            values["role"] = changed["role"] = role
        if disabled is not None and disabled != current.disabled:
            values["disabled"] = changed["disabled"] = disabled
        if password is not None:
            if current.role not in PERSON_ROLES:
                raise StoreError(
                    "invalid", f"{current.role} accounts sign in with API tokens only", "password"
                )
            problem = credentials.password_problem(
                password, username, self.settings.password_min_length
            )
            if problem:
                raise StoreError("invalid", problem, "password")
            values["password_hash"] = credentials.hash_password(password)
            values["password_changed_at"] = now
            changed["password"] = "changed"
        if unlock and (current.locked_until is not None):
            values["locked_until"] = None
            values["failed_logins"] = 0
            changed["unlocked"] = True
        if not values:
            return current
        losing_admin = current.role == "admin" and (
            values.get("role", "admin") != "admin" or values.get("disabled") is True
        )
        # The writer lock (SQLite) and the active admins' rows locked (PostgreSQL): two
        # admins demoting each other at once must not both see the other still there.
        with write_transaction(self.engine) as conn:
            if losing_admin:
                admins = conn.execute(
                    select(A.username)
                    .where(A.role == "admin")
                    .where(A.disabled.is_(False))
                    .with_for_update()
                ).all()
                if len(admins) <= 1:
                    raise StoreError(
                        "conflict",
                        f"{username} is the last active admin: make another admin first",
                        "role" if "role" in values else "disabled",
                    )
            values["updated_at"] = now
            conn.execute(update(schema.accounts).where(A.username == username).values(**values))
            if {"role", "disabled", "password"} & changed.keys():
                self._end_sessions(conn, current.account_id, now)
            if changed.get("disabled") is True:
                conn.execute(
                    update(schema.api_tokens)
                    .where(T.account_id == current.account_id)
                    .where(T.revoked_at.is_(None))
                    .values(revoked_at=now)
                )
            audit_hook(conn, actor, "user.update", "account", username, changed)
        log.info("account %s changed by %s: %s", username, actor, ", ".join(changed))
        found = self.get(username)
        assert found is not None
        return found

    def set_time_zone(self, account: Account, zone: str | None, now: datetime) -> Account:
        """An account's own time zone for the times the console shows (None: the console's
        default), audited in the account's name."""
        if zone is not None and (problem := zone_problem(zone)):
            raise StoreError("invalid", problem, "time_zone")
        if zone == account.time_zone:
            return account
        with self.engine.begin() as conn:
            conn.execute(
                update(schema.accounts)
                .where(A.account_id == account.account_id)
                .values(time_zone=zone, updated_at=now)
            )
            audit_hook(
                conn, account.username, "account.time_zone", "account", account.username,
                {"time_zone": zone, "previous": account.time_zone},
            )  # fmt: skip
        log.info("%s set its time zone to %s", account.username, zone or "the default")
        found = self.get(account.username)
        assert found is not None
        return found

    # ---- login and sessions -------------------------------------------------------------

    def login(
        self,
        username: str,
        password: str,
        now: datetime,
        client: str | None = None,
        user_agent: str | None = None,
    ) -> LoginOk | LoginRefused:
        """Check a password, apply the lockout, and open a session on success."""
        with self.engine.connect() as conn:
            row = conn.execute(select(schema.accounts).where(A.username == username)).first()
        stored: str | None = None
        if row is not None:
            m = row._mapping
            locked_until = as_utc(m["locked_until"])
            if locked_until is not None and locked_until > now:
                # As long a check as for any other refusal: the time of the answer must
                # not tell a locked account from an unknown one.
                credentials.verify_password(None, password)
                log.info("login refused: %r is locked, from %s", username[:64], client)
                return LoginRefused(locked_for=locked_until - now)
            if m["role"] in PERSON_ROLES and not m["disabled"]:
                stored = m["password_hash"]
        if not credentials.verify_password(stored, password):
            return self._failed(row, username, now, client)
        assert row is not None and stored is not None
        return self._open_session(row, stored, password, now, client, user_agent)

    def _failed(self, row: Any, username: str, now: datetime, client: str | None) -> LoginRefused:
        if row is None:
            log.info("login refused: unknown account %r from %s", username[:64], client)
            return LoginRefused(locked_for=None)
        s = self.settings
        with self.engine.begin() as conn:
            conn.execute(
                update(schema.accounts)
                .where(A.account_id == row.account_id)
                .values(failed_logins=A.failed_logins + 1)
            )
            failures = int(
                conn.execute(
                    select(A.failed_logins).where(A.account_id == row.account_id)
                ).scalar_one()
            )
            lock = lockout_for(failures, s.lockout_threshold, s.lockout_base_s, s.lockout_max_s)
            audit_hook(
                conn, username, "auth.login_failed", "account", username,
                {"client": client, "failures": failures},
            )  # fmt: skip
            if lock is not None:
                conn.execute(
                    update(schema.accounts)
                    .where(A.account_id == row.account_id)
                    .values(locked_until=now + lock)
                )
                audit_hook(
                    conn, username, "auth.locked", "account", username,
                    {"client": client, "failures": failures, "seconds": lock.total_seconds()},
                )  # fmt: skip
        log.warning(
            "login refused for %s from %s (%d consecutive failures%s)",
            username, client, failures, f", locked {lock}" if lock else "",
        )  # fmt: skip
        return LoginRefused(locked_for=lock)

    def _open_session(
        self,
        row: Any,
        stored: str,
        password: str,
        now: datetime,
        client: str | None,
        user_agent: str | None,
    ) -> LoginOk:
        secret = credentials.new_session_secret()
        csrf = credentials.new_csrf_token()
        session_id = credentials.new_id()
        expires = now + timedelta(hours=self.settings.session_absolute_h)
        values: dict[str, Any] = {"failed_logins": 0, "locked_until": None, "last_login_at": now}
        if credentials.needs_rehash(stored):
            values["password_hash"] = credentials.hash_password(password)
        with self.engine.begin() as conn:
            conn.execute(
                update(schema.accounts).where(A.account_id == row.account_id).values(**values)
            )
            conn.execute(
                schema.auth_sessions.insert().values(
                    session_id=session_id,
                    token_hash=credentials.digest(secret),
                    account_id=row.account_id,
                    csrf_token=csrf,
                    created_at=now,
                    last_seen_at=now,
                    expires_at=expires,
                    client=(client or "")[:64] or None,
                    user_agent=(user_agent or "")[:300] or None,
                )
            )
            audit_hook(
                conn, row.username, "auth.login", "session", session_id,
                {"client": client},
            )  # fmt: skip
        account = self.get(row.username)
        assert account is not None
        log.info("%s logged in from %s", row.username, client)
        return LoginOk(account, secret, csrf, expires)

    def session_account(self, secret: str, now: datetime) -> Account | None:
        """The account of a live session cookie, or None (unknown, ended, idle or expired)."""
        query = (
            select(schema.accounts, S.session_id, S.csrf_token, S.last_seen_at, S.expires_at)
            .join(schema.auth_sessions, S.account_id == A.account_id)
            .where(S.token_hash == credentials.digest(secret))
            .where(S.ended_at.is_(None))
        )
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        if row is None or row.disabled:
            return None
        last_seen = as_utc(row.last_seen_at)
        expires = as_utc(row.expires_at)
        assert last_seen is not None and expires is not None
        idle = timedelta(minutes=self.settings.session_idle_min)
        if now >= expires or now - last_seen >= idle:
            with self.engine.begin() as conn:
                conn.execute(
                    update(schema.auth_sessions)
                    .where(S.session_id == row.session_id)
                    .values(ended_at=now)
                )
            return None
        if now - last_seen >= TOUCH_EVERY:
            with self.engine.begin() as conn:
                conn.execute(
                    update(schema.auth_sessions)
                    .where(S.session_id == row.session_id)
                    .values(last_seen_at=now)
                )
        return _account(row, via="session", session_id=row.session_id, csrf_token=row.csrf_token)

    def logout(self, account: Account, now: datetime) -> None:
        if account.session_id is None:
            return
        with self.engine.begin() as conn:
            conn.execute(
                update(schema.auth_sessions)
                .where(S.session_id == account.session_id)
                .where(S.ended_at.is_(None))
                .values(ended_at=now)
            )
            audit_hook(conn, account.username, "auth.logout", "session", account.session_id, {})
        log.info("%s logged out", account.username)

    def change_own_password(self, account: Account, current: str, new: str, now: datetime) -> bool:
        """False when `current` is wrong; ends the account's other sessions."""
        with self.engine.connect() as conn:
            stored = conn.execute(
                select(A.password_hash).where(A.account_id == account.account_id)
            ).scalar_one_or_none()
        if not credentials.verify_password(stored, current):
            return False
        problem = credentials.password_problem(
            new, account.username, self.settings.password_min_length
        )
        if problem:
            raise StoreError("invalid", problem, "new_password")
        with self.engine.begin() as conn:
            conn.execute(
                update(schema.accounts)
                .where(A.account_id == account.account_id)
                .values(
                    password_hash=credentials.hash_password(new),
                    password_changed_at=now,
                    updated_at=now,
                )
            )
            self._end_sessions(conn, account.account_id, now, keep=account.session_id)
            audit_hook(
                conn, account.username, "auth.password_changed", "account", account.username, {}
            )
        return True

    @staticmethod
    def _end_sessions(
        conn: Connection, account_id: int, now: datetime, keep: str | None = None
    ) -> None:
        stmt = (
            update(schema.auth_sessions)
            .where(S.account_id == account_id)
            .where(S.ended_at.is_(None))
        )
        if keep is not None:
            stmt = stmt.where(S.session_id != keep)
        conn.execute(stmt.values(ended_at=now))

    # ---- API tokens ---------------------------------------------------------------------

    def issue_token(
        self, actor: str, username: str, name: str, expires_at: datetime | None, now: datetime
    ) -> tuple[str, dict[str, Any]]:
        """A new Bearer token for an integration account: (the token, shown once; its record)."""
        account = self.get(username)
        if account is None:
            raise StoreError("not_found", f"no account {username!r}", "username")
        if account.role not in TOKEN_ROLES:
            raise StoreError(
                "invalid",
                f"{username} is a {account.role} account; API tokens are for integration "
                "and device accounts",
                "username",
            )
        if account.disabled:
            raise StoreError("conflict", f"{username} is disabled", "username")
        token, token_id = credentials.new_api_token()
        with self.engine.begin() as conn:
            conn.execute(
                schema.api_tokens.insert().values(
                    token_id=token_id,
                    account_id=account.account_id,
                    name=name,
                    token_hash=credentials.digest(token),
                    created_at=now,
                    expires_at=expires_at,
                )
            )
            audit_hook(
                conn, actor, "token.issue", "api_token", token_id,
                {"account": username, "name": name,
                 "expires_at": expires_at.isoformat() if expires_at else None},
            )  # fmt: skip
        return token, self._token_record(token_id)

    def _token_record(self, token_id: str) -> dict[str, Any]:
        with self.engine.connect() as conn:
            row = conn.execute(select(schema.api_tokens).where(T.token_id == token_id)).one()
        return _token(row)

    def list_tokens(self, username: str) -> list[dict[str, Any]]:
        query = (
            select(schema.api_tokens)
            .join(schema.accounts, A.account_id == T.account_id)
            .where(A.username == username)
            .order_by(T.created_at)
        )
        with self.engine.connect() as conn:
            return [_token(r) for r in conn.execute(query)]

    def revoke_token(self, actor: str, username: str, token_id: str, now: datetime) -> None:
        with self.engine.begin() as conn:
            found = conn.execute(
                select(T.token_id, T.revoked_at)
                .join(schema.accounts, A.account_id == T.account_id)
                .where(A.username == username)
                .where(T.token_id == token_id)
            ).first()
            if found is None:
                raise StoreError("not_found", f"{username} has no token {token_id!r}", "token_id")
            if found.revoked_at is not None:
                return
            conn.execute(
                update(schema.api_tokens).where(T.token_id == token_id).values(revoked_at=now)
            )
            audit_hook(conn, actor, "token.revoke", "api_token", token_id, {"account": username})

    def token_account(self, token: str, now: datetime) -> Account | None:
        token_id = credentials.token_id_of(token)
        if token_id is None:
            return None
        query = (
            select(schema.accounts, T.token_hash, T.expires_at, T.revoked_at, T.last_used_at)
            .join(schema.api_tokens, T.account_id == A.account_id)
            .where(T.token_id == token_id)
        )
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        if row is None or not credentials.same(row.token_hash, credentials.digest(token)):
            return None
        expires = as_utc(row.expires_at)
        if row.revoked_at is not None or row.disabled or (expires is not None and expires <= now):
            return None
        last_used = as_utc(row.last_used_at)
        if last_used is None or now - last_used >= TOUCH_EVERY:
            with self.engine.begin() as conn:
                conn.execute(
                    update(schema.api_tokens).where(T.token_id == token_id).values(last_used_at=now)
                )
        return _account(row, via="token", token_id=token_id)

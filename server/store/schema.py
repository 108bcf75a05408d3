"""Tables of the store (SQLAlchemy Core, portable between SQLite and PostgreSQL)."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

schema_migrations = Table(
    "schema_migrations",
    metadata,
    Column("version", Integer, primary_key=True),
    Column("name", String(200), nullable=False),
    Column("applied_at", DateTime(timezone=True), nullable=False),
)

#: Every accepted edge message, exactly once per (node, seq): the legal record.
edge_messages = Table(
    "edge_messages",
    metadata,
    Column("node_id", String(64), primary_key=True),
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("channel", String(32), nullable=False),
    Column("ts", DateTime(timezone=True), nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("payload", Text, nullable=False),
)

positions = Table(
    "positions",
    metadata,
    Column("node_id", String(64), primary_key=True),
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("ts", DateTime(timezone=True), nullable=False),
    Column("lat", Float),
    Column("lon", Float),
    Column("alt_m", Float),
    Column("speed_kmh", Float),
    Column("course_deg", Float),
    Column("fix", String(4), nullable=False),
    Column("sats", Integer),
    Column("hdop", Float),
    Column("replayed", Boolean, nullable=False),
    Index("ix_positions_node_ts", "node_id", "ts"),
)

declarations = Table(
    "declarations",
    metadata,
    Column("declaration_id", String(64), primary_key=True),
    Column("vehicle_id", String(64), nullable=False),
    Column("body", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

trips = Table(
    "trips",
    metadata,
    Column("trip_id", String(64), primary_key=True),
    Column("declaration_id", String(64), nullable=False, unique=True),
    Column("vehicle_id", String(64), nullable=False),
    Column("route_id", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("started_at", DateTime(timezone=True)),
    Column("ended_at", DateTime(timezone=True)),
    Column("time_limit_min", Integer, nullable=False),
    Index("ix_trips_vehicle_status", "vehicle_id", "status"),
)

# --- accounts, sessions and API tokens (server.auth; migration 3) -------------------

#: Console and integration accounts. Never deleted (the audit log names them): disabled.
accounts = Table(
    "accounts",
    metadata,
    Column("account_id", Integer, primary_key=True, autoincrement=True),
    Column("username", String(64), nullable=False, unique=True),
    Column("display_name", String(200), nullable=False),
    Column("role", String(16), nullable=False),
    Column("password_hash", String(255)),
    Column("disabled", Boolean, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("password_changed_at", DateTime(timezone=True)),
    Column("last_login_at", DateTime(timezone=True)),
    Column("failed_logins", Integer, nullable=False),
    Column("locked_until", DateTime(timezone=True)),
)

#: Browser sessions; the cookie holds a secret whose SHA-256 is `token_hash`.
auth_sessions = Table(
    "auth_sessions",
    metadata,
    Column("session_id", String(32), primary_key=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("account_id", Integer, nullable=False),
    Column("csrf_token", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("last_seen_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("ended_at", DateTime(timezone=True)),
    Column("client", String(64)),
    Column("user_agent", String(300)),
    Index("ix_auth_sessions_account", "account_id"),
)

#: Bearer tokens of integration accounts; only the SHA-256 of the secret is kept.
api_tokens = Table(
    "api_tokens",
    metadata,
    Column("token_id", String(32), primary_key=True),
    Column("account_id", Integer, nullable=False),
    Column("name", String(100), nullable=False),
    Column("token_hash", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True)),
    Column("revoked_at", DateTime(timezone=True)),
    Column("last_used_at", DateTime(timezone=True)),
    Index("ix_api_tokens_account", "account_id"),
)

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

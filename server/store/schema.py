"""Tables of the store (SQLAlchemy Core, portable between SQLite and PostgreSQL)."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    text,
)

from server.store.alarm_statuses import ACTIVE, status_in

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
    # Copies of the body's gates, so that a gate finds its trips by index (migration 7).
    Column("origin_gate", String(64)),
    Column("destination_gate", String(64)),
    Index("ix_declarations_origin_gate", "origin_gate"),
    Index("ix_declarations_destination_gate", "destination_gate"),
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
    # The officer's own IANA time zone for shown times; NULL = the console's `time_zone`
    # (migration 8).
    Column("time_zone", String(64)),
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

# ---- alarms and audit (migration 2) -------------------------------------------------

#: Alarm statuses that count as active (`server.store.alarm_statuses.ACTIVE`): at most one
#: such alarm per (trip, type). The partial index's predicate as literal SQL: an upsert's
#: conflict target must repeat it, and PostgreSQL cannot match a predicate that holds
#: bound parameters.
ACTIVE_ALARM_PREDICATE = status_in(ACTIVE)

#: One row per alarm; a repeat of an active (trip, type) raises `count`, never a new row.
alarms = Table(
    "alarms",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("type", String(40), nullable=False),
    Column("severity", String(16), nullable=False),
    Column("trip_id", String(64), nullable=False),
    Column("vehicle_id", String(64), nullable=False),
    Column("first_at", DateTime(timezone=True), nullable=False),
    Column("last_at", DateTime(timezone=True), nullable=False),
    Column("count", Integer, nullable=False),
    Column("lon", Float),
    Column("lat", Float),
    Column("status", String(16), nullable=False),
    Column("assignee", String(128)),
    Column("detail", Text, nullable=False),
    Column("cleared_at", DateTime(timezone=True)),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    #: when the server escalated it (unacknowledged past the delay); added by migration 6
    Column("escalated_at", DateTime(timezone=True)),
    Index("ix_alarms_status", "status"),
    Index("ix_alarms_vehicle", "vehicle_id"),
)

#: The database itself refuses a second active alarm of one (trip, type): a partial
#: unique index, which SQLite (3.8+) and PostgreSQL both support.
Index(
    "ux_alarms_active_trip_type",
    alarms.c.trip_id,
    alarms.c.type,
    unique=True,
    sqlite_where=text(ACTIVE_ALARM_PREDICATE),
    postgresql_where=text(ACTIVE_ALARM_PREDICATE),
)

#: Every transition and annotation of an alarm: who (account or `system`), when, from/to.
alarm_events = Table(
    "alarm_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("alarm_id", Integer, ForeignKey("alarms.id"), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("actor", String(128), nullable=False),
    Column("action", String(16), nullable=False),
    Column("from_status", String(16)),
    Column("to_status", String(16), nullable=False),
    Column("comment", Text),
    Column("detail", Text),
    Index("ix_alarm_events_alarm", "alarm_id", "id"),
)

#: The append-only, hash-chained audit log (server/audit). `details` is canonical JSON.
audit_log = Table(
    "audit_log",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("actor", String(128), nullable=False),
    Column("action", String(64), nullable=False),
    Column("object_type", String(32), nullable=False),
    Column("object_id", String(128), nullable=False),
    Column("details", Text, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False, unique=True),
    Index("ix_audit_log_object", "object_type", "object_id"),
    Index("ix_audit_log_at", "at"),
)

#: One row (id 1): the chain head. Appends lock it, so the chain never forks, and it
#: records the last seq and hash, so a cut-off tail is noticed.
audit_head = Table(
    "audit_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("seq", BigInteger, nullable=False),
    Column("hash", String(64), nullable=False),
    Column("at", DateTime(timezone=True)),
)

#: Rule effects already applied to the alarms, so re-judging a trip (late data, a
#: restart) never applies one twice.
rule_effects = Table(
    "rule_effects",
    metadata,
    Column("trip_id", String(64), primary_key=True),
    Column("alarm_type", String(32), primary_key=True),
    Column("kind", String(8), primary_key=True),
    Column("at", DateTime(timezone=True), primary_key=True),
    Column("applied_at", DateTime(timezone=True), nullable=False),
)

#: How far the judge has judged each vehicle's messages (server/judge_marks.py;
#: migration 12): every message of `vehicle_id` numbered `seq` or below is judged for
#: trip `trip_id`, its effects applied — but for the numbers in `missing` ([first, last]
#: ranges), which the judge has not seen (still on their way, or given up). A gate
#: decides an arrival only once its trip's mark has caught up with what the store holds —
#: and with the judge's timers (silence, time limit; migration 13): after `due_at` they
#: have not run, and once the trip has arrived they have run as at `arrived_at`.
judge_marks = Table(
    "judge_marks",
    metadata,
    Column("vehicle_id", String(64), primary_key=True),
    Column("trip_id", String(64), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("missing", JSON, nullable=False),
    Column("judged_at", DateTime(timezone=True), nullable=False),
    Column("due_at", DateTime(timezone=True)),
    Column("arrived_at", DateTime(timezone=True)),
)

# ---- gates: passages, release records, signed commands (server/gates; migration 5) ----

#: One row per gate passage (`passage_id` from the gate controller) with the server's
#: decision, its reasons, the command sent, and an officer's override if any.
passages = Table(
    "passages",
    metadata,
    Column("passage_id", String(128), primary_key=True),
    Column("gate_node", String(64), nullable=False),
    Column("gate_id", String(128)),
    Column("lane", String(128), nullable=False),
    Column("direction", String(4), nullable=False),
    Column("containers", JSON, nullable=False),
    Column("plate", JSON),
    Column("images", JSON, nullable=False),
    Column("ts", DateTime(timezone=True), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("replayed", Boolean, nullable=False),
    Column("trip_id", String(64)),
    Column("phase", String(16)),
    Column("decision", String(8), nullable=False),
    Column("reasons", JSON, nullable=False),
    Column("reason_codes", JSON, nullable=False),
    Column("command_id", String(128)),
    Column("decided_at", DateTime(timezone=True), nullable=False),
    Column("override_action", String(8)),
    Column("override_comment", Text),
    Column("override_by", String(128)),
    Column("override_at", DateTime(timezone=True)),
    # migration 10: the appointment the passage was decided on (server/gates/appointments)
    # and when an officer last corrected its reading (table passage_corrections)
    Column("appointment_id", String(64)),
    Column("corrected_at", DateTime(timezone=True)),
    Index("ix_passages_ts", "ts"),
    Index("ix_passages_gate_lane", "gate_id", "lane"),
    Index("ix_passages_trip", "trip_id"),
)

#: Electronic release records (or requests for inspection) from the declaration system.
release_records = Table(
    "release_records",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("declaration_id", String(64), nullable=False),
    Column("release_id", String(128)),
    Column("released_at", DateTime(timezone=True)),
    Column("inspect", Boolean, nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    Column("recorded_by", String(128), nullable=False),
    Index("ix_release_records_declaration", "declaration_id", "id"),
)

#: Every signed server→edge command (gate open/hold, lock unseal) and its answer.
commands = Table(
    "commands",
    metadata,
    Column("command_id", String(128), primary_key=True),
    Column("kind", String(8), nullable=False),
    Column("node_id", String(64), nullable=False),
    Column("action", String(16), nullable=False),
    Column("passage_id", String(128)),
    Column("trip_id", String(64)),
    Column("payload", Text, nullable=False),
    Column("issued_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("actor", String(128), nullable=False),
    Column("result", String(16)),
    Column("result_detail", Text),
    Column("result_at", DateTime(timezone=True)),
    Index("ix_commands_passage", "passage_id"),
)

# ---- dead letters: refused edge messages (server/store/dead_letters.py; migration 9) ----

#: Edge messages the ingest refused, newest kept (a configured number; the oldest are
#: dropped), with the raw bytes cut to `dead_letters.RAW_BYTES`, for an admin to inspect.
dead_letters = Table(
    "dead_letters",
    metadata,
    Column(
        "id",
        BigInteger().with_variant(Integer, "sqlite"),  # SQLite: the rowid, auto-increasing
        primary_key=True,
        autoincrement=True,
    ),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("topic", String(256), nullable=False),
    Column("kind", String(8)),
    Column("node_id", String(64)),
    Column("channel", String(32)),
    Column("reason", String(32), nullable=False),
    Column("detail", Text, nullable=False),
    Column("device_ts", DateTime(timezone=True)),
    Column("size", Integer, nullable=False),
    Column("raw", LargeBinary, nullable=False),
    Index("ix_dead_letters_node", "node_id", "id"),
    Index("ix_dead_letters_reason", "reason", "id"),
)

# ---- gate evidence: passage images (server/evidence; migration 11) ----

#: One row per uploaded image of a passage (the bytes are in the evidence storage under
#: `storage_key`): what it is, the readings drawn on it, who uploaded it and when.
passage_images = Table(
    "passage_images",
    metadata,
    Column("passage_id", String(128), primary_key=True),
    Column("n", Integer, primary_key=True),
    Column("kind", String(8), nullable=False),
    Column("camera", String(64), nullable=False),
    Column("frame", Integer),
    Column("texts", JSON, nullable=False),
    Column("width", Integer, nullable=False),
    Column("height", Integer, nullable=False),
    Column("size", Integer, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("storage_key", String(300), nullable=False),
    Column("uploaded_at", DateTime(timezone=True), nullable=False),
    Column("uploaded_by", String(128), nullable=False),
    Index("ix_passage_images_uploaded", "uploaded_at"),
)

# ---- corrections and appointments (server/gates; migration 10) ----

#: An officer's correction of a held passage's reading, beside the OCR reading (which the
#: `passages` row keeps as it came), with the decision taken again with it.
passage_corrections = Table(
    "passage_corrections",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("passage_id", String(128), nullable=False),
    Column("containers", JSON, nullable=False),
    Column("plate", JSON),
    Column("comment", Text, nullable=False),
    Column("corrected_by", String(128), nullable=False),
    Column("corrected_at", DateTime(timezone=True), nullable=False),
    Column("previous_decision", String(8), nullable=False),
    Column("previous_reasons", JSON, nullable=False),
    Column("decision", String(8), nullable=False),
    Column("reasons", JSON, nullable=False),
    Column("reason_codes", JSON, nullable=False),
    Column("command_id", String(128)),
    Column("lane_state", String(16)),
    Index("ix_passage_corrections_passage", "passage_id", "id"),
)

#: Vehicles booked in advance to pass a gate (网上预约): plate, containers, time window.
appointments = Table(
    "appointments",
    metadata,
    Column("appointment_id", String(64), primary_key=True),
    Column("plate", String(16), nullable=False),
    Column("plate_key", String(16), nullable=False),
    Column("containers", JSON, nullable=False),
    Column("gate_id", String(128), nullable=False),
    Column("direction", String(4), nullable=False),
    Column("window_start", DateTime(timezone=True), nullable=False),
    Column("window_end", DateTime(timezone=True), nullable=False),
    Column("purpose", Text, nullable=False),
    Column("enterprise", JSON, nullable=False),
    Column("status", String(16), nullable=False),
    Column("created_by", String(128), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("cancelled_by", String(128)),
    Column("cancelled_at", DateTime(timezone=True)),
    Column("cancel_comment", Text),
    Column("used_by_passage", String(128)),
    Column("used_at", DateTime(timezone=True)),
    Index("ix_appointments_gate_plate", "gate_id", "plate_key"),
    Index("ix_appointments_window", "window_start"),
)

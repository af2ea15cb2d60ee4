"""Tables of the state store. Core, not ORM: the hot path writes in bulk.

Identifiers are strings (UUIDs as text) so the same schema runs on PostgreSQL and SQLite.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

metadata = sa.MetaData()
Json = sa.JSON().with_variant(JSONB(), "postgresql")
Ts = sa.DateTime(timezone=True)

entities = sa.Table(
    "entities",
    metadata,
    sa.Column("entity_id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("display_name", sa.String(255)),
    sa.Column("parent_id", sa.String(64)),
    sa.Column("is_global", sa.Boolean, nullable=False),
    sa.Column("earliest_activity_date", sa.Date),
    sa.Column("has_own_accounting_periods", sa.Boolean, nullable=False),
    sa.Column("active_currencies", Json, nullable=False),
    sa.Column("updated_at", Ts, nullable=False),
)

connections = sa.Table(
    "connections",
    metadata,
    sa.Column("connection_id", sa.String(64), primary_key=True),
    sa.Column("source_entity", sa.String(64), nullable=False),
    sa.Column("target_entity", sa.String(64), nullable=False, index=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("updated_at", Ts, nullable=False),
)

share_settings = sa.Table(
    "share_settings",
    metadata,
    sa.Column("target_entity", sa.String(64), primary_key=True),
    sa.Column("object_type", sa.String(32), primary_key=True),
    sa.Column("acceptance", sa.String(16), nullable=False),
    sa.Column("updated_at", Ts, nullable=False),
)

control_levels = sa.Table(
    "control_levels",
    metadata,
    sa.Column("attribute", sa.String(64), primary_key=True),
    sa.Column("level", sa.String(8), nullable=False),
    sa.Column("updated_at", Ts, nullable=False),
)

source_objects = sa.Table(
    "source_objects",
    metadata,
    sa.Column("object_type", sa.String(32), primary_key=True),
    sa.Column("object_id", sa.String(64), primary_key=True),
    sa.Column("parent_id", sa.String(64)),
    sa.Column("version", sa.BigInteger, nullable=False),
    sa.Column("data", Json, nullable=False),
    sa.Column("event_id", sa.String(36), nullable=False),
    sa.Column("updated_at", Ts, nullable=False),
)

target_copies = sa.Table(
    "target_copies",
    metadata,
    sa.Column("connection_id", sa.String(64), primary_key=True),
    sa.Column("object_type", sa.String(32), primary_key=True),
    sa.Column("source_object_id", sa.String(64), primary_key=True),
    sa.Column("target_entity", sa.String(64), nullable=False),
    sa.Column("target_object_id", sa.String(64), nullable=False),
    sa.Column("target_parent_id", sa.String(64)),
    sa.Column("version", sa.BigInteger, nullable=False),
    sa.Column("data", Json, nullable=False),
    sa.Column("updated_at", Ts, nullable=False),
    sa.Index("ix_target_copies_source", "source_object_id"),
)

decisions = sa.Table(
    "decisions",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("at", Ts, nullable=False),
    sa.Column("cause_event_id", sa.String(36), nullable=False),
    sa.Column("target_entity", sa.String(64)),
    sa.Column("object_type", sa.String(32)),
    sa.Column("object_id", sa.String(64)),
    sa.Column("version", sa.BigInteger),
    sa.Column("decision", sa.String(16), nullable=False),
    sa.Column("reason", sa.String(64), nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    # Set when one row stands for the same decision about several targets (a fan-out is one
    # row, see store/decisions.py); target_entity is then NULL. Rows without it are one
    # decision each, for target_entity (NULL: every target, e.g. a rejected event).
    sa.Column(
        "targets", sa.JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")
    ),
    sa.Index("ix_decisions_object", "object_id", "target_entity"),
)

processed_events = sa.Table(
    "processed_events",
    metadata,
    sa.Column("event_id", sa.String(36), primary_key=True),
    sa.Column("queue", sa.String(128), nullable=False),
    sa.Column("processed_at", Ts, nullable=False),
)

# One row per output, written by releases before the batch outbox; still relayed (a worker of
# such a release may have died with rows in it), no longer written. Drop in a later release.
outbox = sa.Table(
    "outbox",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("event_id", sa.String(36), nullable=False),
    sa.Column("routing_key", sa.String(255), nullable=False),
    sa.Column("body", sa.Text, nullable=False),  # the JSON body as published (UTF-8 text)
    sa.Column("created_at", Ts, nullable=False, index=True),
)

bulk_jobs = sa.Table(
    "bulk_jobs",
    metadata,
    sa.Column("job_id", sa.String(36), primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False),  # backfill | release
    sa.Column("connection_id", sa.String(64), nullable=False),
    sa.Column("target_entity", sa.String(64), nullable=False),
    sa.Column("cause_event_id", sa.String(36), nullable=False),
    sa.Column("object_types", Json, nullable=False),
    sa.Column("currencies", Json, nullable=False),
    sa.Column("cursor_type", sa.String(32)),  # the last object done: the next chunk starts after
    sa.Column("cursor_id", sa.String(64)),
    sa.Column("done", sa.BigInteger, nullable=False),
    sa.Column("total", sa.BigInteger, nullable=False),  # counted when the job was made
    sa.Column("status", sa.String(16), nullable=False),  # running | finished | cancelled
    sa.Column("created_at", Ts, nullable=False),
    sa.Column("updated_at", Ts, nullable=False),
    sa.Index("ix_bulk_jobs_status", "status", "created_at"),
)

# The outbox: one row per batch transaction, holding all of its outputs.
outbox_batches = sa.Table(
    "outbox_batches",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("created_at", Ts, nullable=False, index=True),
    sa.Column("size", sa.Integer, nullable=False),  # how many messages
    # JSON array of [event_id, routing_key, body as published: a JSON value, or in rows of
    # earlier releases a string of it], in publish order
    sa.Column("messages", sa.Text, nullable=False),
)

sync_sessions = sa.Table(
    "sync_sessions",
    metadata,
    sa.Column("request_id", sa.String(36), primary_key=True),
    sa.Column("object_type", sa.String(32), nullable=False),
    sa.Column("origin", sa.String(8), nullable=False),
    sa.Column("requested_by", sa.String(255), nullable=False),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("reason", sa.Text),
    sa.Column("started_at", Ts, nullable=False),
    sa.Column("finished_at", Ts, nullable=False, index=True),
    sa.Column("completed", Json, nullable=False),  # the sync.completed body, with every result
)

sync_locks = sa.Table(
    "sync_locks",
    metadata,
    sa.Column("key", sa.String(128), primary_key=True),
    sa.Column("expires_at", Ts, nullable=False),
)

# Failed messages ingested from the .dlq queues (operations/ingest.py): one row per queue and
# message id, so reading them never touches the broker (docs/dead-letters.md).
failed_messages = sa.Table(
    "failed_messages",
    metadata,
    sa.Column("queue", sa.String(255), primary_key=True),  # the .dlq it was ingested from
    sa.Column("message_id", sa.String(255), primary_key=True),
    sa.Column("routing_key", sa.String(255), nullable=False),
    sa.Column("headers", Json, nullable=False),
    sa.Column("properties", Json, nullable=False),
    sa.Column("body", sa.LargeBinary, nullable=False),
    sa.Column("body_text", sa.Text),  # the body as UTF-8 text when it is, for search
    sa.Column("error_type", sa.String(255), nullable=False),
    sa.Column("error_message", sa.Text, nullable=False),
    sa.Column("fingerprint", sa.String(16), nullable=False),
    sa.Column("failures", sa.Integer, nullable=False),  # times it failed (each replay can add one)
    sa.Column("copies", sa.Integer, nullable=False),  # broker copies of its last failure
    # x-replay-count of its last failure: a higher one failed again after a replay, an equal
    # one is another broker copy of the same failure.
    sa.Column("replays", sa.Integer, nullable=False),
    sa.Column("first_failed_at", Ts, nullable=False),
    sa.Column("last_failed_at", Ts, nullable=False),
    sa.Column("ingested_at", Ts, nullable=False),  # distinct per message: keeps the DLQ's order
    sa.Column("status", sa.String(16), nullable=False),  # failed | replayed | purged
    sa.Column("resolved_at", Ts),
    sa.Column("resolved_by", sa.String(255)),
    sa.Index("ix_failed_messages_group", "status", "error_type", "fingerprint"),
)

# Every replay and purge, from the CLI or the console: who, when, what, and how it went.
operation_history = sa.Table(
    "operation_history",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("started_at", Ts, nullable=False, index=True),
    sa.Column("finished_at", Ts),
    sa.Column("actor", sa.String(255), nullable=False),  # OS user (CLI) or token role (console)
    sa.Column("via", sa.String(16), nullable=False),  # cli | console
    sa.Column("action", sa.String(16), nullable=False),  # replay | purge
    sa.Column("scope", Json, nullable=False),  # the filter it acted on
    sa.Column("dry_run", sa.Boolean, nullable=False),
    sa.Column("selected", sa.Integer, nullable=False),
    sa.Column("done", sa.Integer, nullable=False),
    sa.Column("errors", sa.Integer, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # running | finished | stopped | failed
    sa.Column("note", sa.Text),
    sa.Column("messages", Json, nullable=False),  # [[queue, message id, destination], ...]
)

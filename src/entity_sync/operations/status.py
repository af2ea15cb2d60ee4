"""What is happening now: queues and consumers, failed messages, outbox, schema, sync sessions.

Each part is read on its own: an unreachable broker or database is reported, not fatal.
"""

from __future__ import annotations

import contextlib
from typing import Any

import sqlalchemy as sa

from entity_sync.operations.context import Operations
from entity_sync.operations.ingest import ingest
from entity_sync.runtime import outbox
from entity_sync.runtime.metrics import queue_stats
from entity_sync.store import failed, jobs, migrate
from entity_sync.store.sync_store import DbSyncStore

# Columns of a sync session shown by `status`, in this order.
SESSION_COLUMNS = (
    "request_id",
    "status",
    "object_type",
    "origin",
    "requested_by",
    "started_at",
    "finished_at",
    "reason",
)


def report(ops: Operations, sessions: int = 10) -> dict[str, Any]:
    settings = ops.settings
    out: dict[str, Any] = {
        "prefix": settings.prefix,
        "broker": settings.safe_broker_url(),
        "database": settings.safe_database_url(),
    }
    out.update(_database_part(ops, sessions))
    try:
        out["queues"] = queues(ops, with_failed="database_error" not in out)
    except Exception as exc:  # noqa: BLE001 - shown as part of the report
        out["queues_error"] = one_line(exc)
    return out


def queues(ops: Operations, *, with_failed: bool = True) -> list[dict[str, Any]]:
    """Every queue's depth and consumers; a DLQ's `failed` counts ingested open messages."""
    if with_failed:
        with ops.broker() as conn:
            for name in ops.dlqs():
                ingest(conn, ops.engine, name)
        open_ = failed.open_by_queue(ops.engine)
    rows = []
    for s in queue_stats(ops.settings, ops.names):
        if s.messages is None and s.kind == "retry":
            continue  # delay queues: RabbitMQ only
        row: dict[str, Any] = {
            "queue": s.queue,
            "kind": s.kind,
            "messages": s.messages,
            "consumers": s.consumers,
            "exists": s.messages is not None,
        }
        if s.kind == "dlq" and with_failed and s.messages is not None:
            # Ingested failures still count: reading a DLQ must not hide them.
            distinct, copies = open_.get(s.queue, (0, 0))
            row["failed"] = distinct + s.messages
            row["messages"] = copies + s.messages
        rows.append(row)
    return rows


def _database_part(ops: Operations, limit: int) -> dict[str, Any]:
    part: dict[str, Any] = {}
    engine = ops.engine
    try:
        part["schema"] = {
            "current": migrate.current_revision(engine),
            "head": migrate.head_revision(),
        }
        if part["schema"]["current"] != part["schema"]["head"]:
            part["database_error"] = (
                "schema not current: `entity-sync db upgrade` (or run) brings it to head"
            )
            return part
        part["outbox_backlog"] = outbox.backlog(engine)
        with engine.connect() as conn:
            part["bulk_fan_outs"] = jobs.running_jobs(conn)
        part["sync_sessions"] = [
            {c: ({**s, "object_type": kind}).get(c) for c in SESSION_COLUMNS}
            for kind, s in DbSyncStore(engine).history(limit)
        ]
    except sa.exc.SQLAlchemyError as exc:
        part["database_error"] = one_line(exc)
    return part


def one_line(exc: BaseException) -> str:
    text = ""
    with contextlib.suppress(Exception):
        text = str(getattr(exc, "orig", None) or exc)
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return first[:300]

"""Processed event ids: the dedupe of redelivered events, and their pruning after retention."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from entity_sync.store import tables as t
from entity_sync.store.sql import bulk_insert, chunks, member_of, utcnow


def seen_event_ids(conn: Connection, event_ids: Collection[str]) -> set[str]:
    """Which of `event_ids` a committed batch already applied."""
    seen: set[str] = set()
    col = t.processed_events.c.event_id
    for chunk in chunks(sorted(event_ids)):
        seen.update(conn.execute(sa.select(col).where(member_of(conn, col, chunk))).scalars())
    return seen


def mark_processed(conn: Connection, items: list[tuple[str, str]]) -> None:
    """Record (event id, queue) pairs as applied; one already recorded stays as it is."""
    now = utcnow()
    bulk_insert(
        conn,
        t.processed_events,
        [{"event_id": e, "queue": q, "processed_at": now} for e, q in sorted(items)],
        on_conflict="ignore",
    )


def prune_processed(conn: Connection, older_than: dt.datetime, limit: int = 10_000) -> int:
    """Forget event ids processed before `older_than` (a chunk at a time); returns how many."""
    col = t.processed_events.c
    oldest = sa.select(col.event_id).where(col.processed_at < older_than).limit(limit)
    result = conn.execute(t.processed_events.delete().where(col.event_id.in_(oldest)))
    return int(result.rowcount or 0)

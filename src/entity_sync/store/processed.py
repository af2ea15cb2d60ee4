"""Processed event ids: the dedupe of redelivered events, and their pruning after retention."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from entity_sync.store import tables as t
from entity_sync.store.sql import chunks, insert_new, member_of, utcnow


def claim(conn: Connection, items: Collection[tuple[str, str]]) -> set[str]:
    """Record (event id, queue) pairs as processed before applying them; returns the ids that
    were not recorded yet, which this transaction may apply (the others are duplicates).

    The dedupe read and the record in one statement on PostgreSQL (it was two). An id that a
    concurrent batch is recording waits for that batch: two workers never apply one event at
    once. Ids are inserted in sorted order, so two batches claiming the same ones cannot
    deadlock. A claimed event that is then not applied is given back with `release`.
    """
    now = utcnow()
    queues = dict(sorted(items, reverse=True))  # one row per id (an id twice in a batch)
    rows = [{"event_id": e, "queue": queues[e], "processed_at": now} for e in sorted(queues)]
    return set(insert_new(conn, t.processed_events, rows, "event_id"))


def release(conn: Connection, event_ids: Collection[str]) -> None:
    """Forget claimed ids whose events were not applied (retried or dead-lettered): their next
    delivery, or an operator's replay, is applied and not taken for a duplicate."""
    col = t.processed_events.c.event_id
    for chunk in chunks(sorted(event_ids)):
        conn.execute(t.processed_events.delete().where(member_of(conn, col, chunk)))


def prune_processed(conn: Connection, older_than: dt.datetime, limit: int = 10_000) -> int:
    """Forget event ids processed before `older_than` (a chunk at a time); returns how many."""
    col = t.processed_events.c
    oldest = sa.select(col.event_id).where(col.processed_at < older_than).limit(limit)
    result = conn.execute(t.processed_events.delete().where(col.event_id.in_(oldest)))
    return int(result.rowcount or 0)

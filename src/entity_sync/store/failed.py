"""SQL of `failed_messages`: failed messages ingested from the DLQs (operations/ingest.py).

One row per (DLQ, message id). A second copy of the same failure (same `replays`: a crash
between a dead letter's publish and its ack makes two) only counts a copy; a failure after a
replay (higher `x-replay-count`) updates the row and reopens it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from entity_sync.store import tables as t

F = t.failed_messages
OPEN = "failed"


@dataclass(frozen=True, slots=True)
class Filter:
    """Which failed messages a read or an action applies to; empty parts match everything."""

    queues: Sequence[str] = ()  # full .dlq names
    groups: Sequence[str] = ()  # error type, fingerprint, or TYPE/FINGERPRINT
    ids: Sequence[str] = ()
    text: str = ""  # in headers, body or error message (case-insensitive)
    since: dt.datetime | None = None  # last failure at or after
    until: dt.datetime | None = None  # last failure before
    status: str = OPEN  # failed | replayed | purged | "" for any

    def where(self) -> sa.ColumnElement[bool]:
        parts: list[sa.ColumnElement[bool]] = []
        if self.status:
            parts.append(F.c.status == self.status)
        if self.queues:
            parts.append(F.c.queue.in_(list(self.queues)))
        if self.groups:
            parts.append(sa.or_(*[_group(g) for g in self.groups]))
        if self.ids:
            parts.append(F.c.message_id.in_(list(self.ids)))
        if self.text:
            parts.append(
                sa.or_(
                    F.c.error_message.icontains(self.text, autoescape=True),
                    F.c.body_text.icontains(self.text, autoescape=True),
                    sa.cast(F.c.headers, sa.Text).icontains(self.text, autoescape=True),
                )
            )
        if self.since is not None:
            parts.append(F.c.last_failed_at >= self.since)
        if self.until is not None:
            parts.append(F.c.last_failed_at < self.until)
        return sa.and_(sa.true(), *parts)


def _group(value: str) -> sa.ColumnElement[bool]:
    kind, _, fingerprint = value.rpartition("/")
    if kind:
        return sa.and_(F.c.error_type == kind, F.c.fingerprint == fingerprint)
    return sa.or_(F.c.error_type == value, F.c.fingerprint == value)


def upsert(conn: Connection, row: dict[str, Any]) -> None:
    """Record one ingested copy (in the caller's transaction; committed before its ack)."""
    key = sa.and_(F.c.queue == row["queue"], F.c.message_id == row["message_id"])
    for _ in range(2):  # a second round only if another ingester inserted it in between
        same = conn.execute(
            F.update().where(key, F.c.replays >= row["replays"]).values(copies=F.c.copies + 1)
        )
        if same.rowcount:
            return
        fields = {k: v for k, v in row.items() if k not in ("queue", "message_id")}
        fields.pop("first_failed_at")
        again = conn.execute(
            F.update()
            .where(key, F.c.replays < row["replays"])
            .values(
                **fields,
                failures=F.c.failures + 1,
                copies=1,
                status=OPEN,
                resolved_at=None,
                resolved_by=None,
            )
        )
        if again.rowcount:
            return
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        new = {**row, "failures": 1, "copies": 1, "status": OPEN}
        inserted = conn.execute(dialect.insert(F).values(new).on_conflict_do_nothing())
        if inserted.rowcount:
            return


def rows(
    engine: Engine, flt: Filter, limit: int | None = None, offset: int = 0
) -> list[dict[str, Any]]:
    stmt = sa.select(F).where(flt.where()).order_by(F.c.last_failed_at, F.c.ingested_at, F.c.queue)
    if limit is not None:
        stmt = stmt.limit(limit).offset(offset)
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(stmt)]


def count(engine: Engine, flt: Filter) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).where(flt.where())).scalar_one())


def groups(engine: Engine, flt: Filter) -> list[dict[str, Any]]:
    """Per queue, error type and fingerprint: count, copies, first and last failure, example."""
    stmt = (
        sa.select(
            F.c.queue,
            F.c.error_type,
            F.c.fingerprint,
            sa.func.count().label("count"),
            sa.func.sum(F.c.copies).label("copies"),
            sa.func.min(F.c.first_failed_at).label("first"),
            sa.func.max(F.c.last_failed_at).label("last"),
            sa.func.min(F.c.error_message).label("example"),
        )
        .where(flt.where())
        .group_by(F.c.queue, F.c.error_type, F.c.fingerprint)
        .order_by(sa.desc("count"), F.c.queue, F.c.error_type)
    )
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(stmt)]


def open_by_queue(engine: Engine) -> dict[str, tuple[int, int]]:
    """Per DLQ: unresolved failed messages and their broker copies. A DLQ's depth, as
    operators and alerts see it, is the broker's count plus these copies."""
    stmt = (
        sa.select(F.c.queue, sa.func.count(), sa.func.sum(F.c.copies))
        .where(F.c.status == OPEN)
        .group_by(F.c.queue)
    )
    with engine.connect() as conn:
        return {str(q): (int(n), int(c)) for q, n, c in conn.execute(stmt)}


def resolve(engine: Engine, keys: Iterable[tuple[str, str]], status: str, by: str) -> int:
    """Mark messages replayed or purged (kept, like ServiceControl's archive, for history)."""
    now = dt.datetime.now(dt.UTC)
    done = 0
    with engine.begin() as conn:
        for queue, message_id in keys:
            done += conn.execute(
                F.update()
                .where(F.c.queue == queue, F.c.message_id == message_id, F.c.status == OPEN)
                .values(status=status, resolved_at=now, resolved_by=by)
            ).rowcount
    return done


def prune(engine: Engine, resolved_before: dt.datetime) -> int:
    """Forget replayed and purged messages resolved before then; open ones stay until resolved.
    Their history entries stay (operation_history keeps the message ids)."""
    with engine.begin() as conn:
        return conn.execute(
            F.delete().where(F.c.status != OPEN, F.c.resolved_at < resolved_before)
        ).rowcount


def failed_since(engine: Engine, queue: str, message_id: str, since: dt.datetime) -> bool:
    stmt = sa.select(F.c.status).where(
        F.c.queue == queue,
        F.c.message_id == message_id,
        F.c.status == OPEN,
        F.c.last_failed_at >= since,
    )
    with engine.connect() as conn:
        return conn.execute(stmt).first() is not None


def was_processed(engine: Engine, event_id: str) -> bool:
    """The worker applied this message: its event id is in the dedupe table, or (a sync
    request) its session was saved."""
    done = sa.union_all(
        sa.select(t.processed_events.c.event_id).where(t.processed_events.c.event_id == event_id),
        sa.select(t.sync_sessions.c.request_id).where(t.sync_sessions.c.request_id == event_id),
    )
    with engine.connect() as conn:
        return conn.execute(done).first() is not None

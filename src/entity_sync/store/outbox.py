"""The outbox rows: one per batch transaction holding all of its messages (`outbox_batches`),
and the per-output rows of the previous release (`outbox`), still relayed, no longer written.

What the runtime does with them (publish after commit, relay, delete once confirmed) is in
runtime/outbox.py; this module only reads and writes the rows.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from entity_sync.store import tables as t
from entity_sync.store.sql import chunks, member_of, utcnow


class OutboxEntry(NamedTuple):
    """One stored message, as read back: `event_id` is its AMQP message id."""

    event_id: str
    routing_key: str
    body: bytes  # as published


class Storable(Protocol):
    """What the outbox keeps of a message to publish (runtime.broker.OutMessage has it)."""

    @property
    def message_id(self) -> str | None: ...
    @property
    def routing_key(self) -> str: ...
    @property
    def body(self) -> bytes: ...


@dataclass(slots=True)
class Pending:
    """Rows left behind, their messages in publish order, and the ids to delete them by."""

    entries: list[OutboxEntry] = field(default_factory=list)
    batch_ids: list[int] = field(default_factory=list)  # outbox_batches.id
    legacy_ids: list[str] = field(default_factory=list)  # outbox.event_id (previous release)


def insert_batch(conn: sa.Connection, messages: Sequence[Storable]) -> int:
    """Store a batch's messages as one row (in the batch transaction); returns the row's id.

    Each message must have its id. The messages themselves, not copies: a batch at 10 targets
    stores 5,000 of them.
    """
    # Each body goes in as the JSON value it is (orjson.Fragment), not as a string of it:
    # no second encoding and no escaping (a third of the encoding time at 10 targets).
    encoded = orjson.dumps(
        [[m.message_id, m.routing_key, orjson.Fragment(m.body)] for m in messages]
    )
    batch_id = conn.execute(
        t.outbox_batches.insert()
        .values(created_at=utcnow(), size=len(messages), messages=encoded.decode())
        .returning(t.outbox_batches.c.id)
    ).scalar_one()
    return int(batch_id)


def delete(engine: Engine, batch_ids: Sequence[int], legacy_ids: Sequence[str] = ()) -> None:
    """Remove rows whose messages are confirmed, in a transaction of its own."""
    if not batch_ids and not legacy_ids:
        return
    with engine.begin() as conn:
        if batch_ids:
            conn.execute(t.outbox_batches.delete().where(t.outbox_batches.c.id.in_(batch_ids)))
        for chunk in chunks(legacy_ids):
            conn.execute(t.outbox.delete().where(member_of(conn, t.outbox.c.event_id, chunk)))


def pending(engine: Engine, older_than_seconds: float, limit: int = 1000) -> Pending:
    """Rows older than `older_than_seconds`, left by a worker that died after its commit (at
    most about `limit` messages, oldest first; a batch row is never split)."""
    cutoff = utcnow() - dt.timedelta(seconds=older_than_seconds)
    found = Pending()
    b = t.outbox_batches.c
    o = t.outbox.c
    with engine.connect() as conn:
        for row in conn.execute(
            sa.select(b.id, b.size, b.messages)
            .where(b.created_at <= cutoff)
            .order_by(b.id)
            .limit(limit)
        ):
            if found.entries and len(found.entries) + row.size > limit:
                break
            found.batch_ids.append(row.id)
            found.entries.extend(_batch_entries(row.messages))
        for row in conn.execute(
            sa.select(o.event_id, o.routing_key, o.body)
            .where(o.created_at <= cutoff)
            .order_by(o.id)
            .limit(max(0, limit - len(found.entries)))
        ):
            found.legacy_ids.append(row.event_id)
            found.entries.append(_legacy_entry(row))
    return found


def _batch_entries(messages: str) -> list[OutboxEntry]:
    """An `outbox_batches.messages` value: a JSON array of [event_id, routing_key, body], the
    body a JSON value (re-encoded by orjson, it is the bytes published: orjson wrote them) or,
    in rows of earlier releases, a string holding it."""
    return [
        OutboxEntry(
            event_id=e,
            routing_key=rk,
            body=body.encode() if isinstance(body, str) else orjson.dumps(body),
        )
        for e, rk, body in orjson.loads(messages)
    ]


def _legacy_entry(row: Any) -> OutboxEntry:
    return OutboxEntry(event_id=row.event_id, routing_key=row.routing_key, body=row.body.encode())


def backlog(engine: Engine) -> int:
    """Messages in the outbox (not rows)."""
    with engine.connect() as conn:
        batched = conn.execute(sa.select(sa.func.coalesce(sa.func.sum(t.outbox_batches.c.size), 0)))
        legacy = conn.execute(sa.select(sa.func.count()).select_from(t.outbox))
        return int(batched.scalar_one()) + int(legacy.scalar_one())

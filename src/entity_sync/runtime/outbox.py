"""The outbox: outputs are stored in the batch transaction and published after the commit.

One row per batch (`outbox_batches`) holds all of its outputs as a JSON array, so the outbox
costs one insert and one delete per batch, not per output. If the worker dies between commit
and publish, the row stays and is relayed later, by this or another worker; an output may then
be published twice, always with the same event id. Rows of the older per-output table
(`outbox`, written by the previous release) are relayed too.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from entity_sync.handlers.sharing.model import Output
from entity_sync.runtime.broker import OutMessage
from entity_sync.store import tables as t
from entity_sync.store.repository import member_of


def to_message(out_exchange: str, event_id: str, routing_key: str, body: bytes) -> OutMessage:
    return OutMessage(out_exchange, routing_key, body, message_id=event_id)


@dataclass
class Stored:
    """Outbox rows and their messages; delete the rows once the messages are confirmed."""

    messages: list[OutMessage] = field(default_factory=list)
    batch_ids: list[int] = field(default_factory=list)  # outbox_batches.id
    legacy_ids: list[str] = field(default_factory=list)  # outbox.event_id (previous release)


def store(conn: Connection, outputs: Sequence[Output], out_exchange: str) -> Stored:
    """Insert the outputs as one outbox row; returns them ready to publish."""
    if not outputs:
        return Stored()
    messages = [
        to_message(out_exchange, o.event_id, o.routing_key, orjson.dumps(o.body)) for o in outputs
    ]
    rows = orjson.dumps([[m.message_id, m.routing_key, m.body.decode()] for m in messages])
    batch_id = conn.execute(
        t.outbox_batches.insert()
        .values(created_at=dt.datetime.now(dt.UTC), size=len(messages), messages=rows.decode())
        .returning(t.outbox_batches.c.id)
    ).scalar_one()
    return Stored(messages, [int(batch_id)])


def delete(engine: Engine, batch_ids: Sequence[int], legacy_ids: Sequence[str] = ()) -> None:
    if not batch_ids and not legacy_ids:
        return
    with engine.begin() as conn:
        if batch_ids:
            conn.execute(t.outbox_batches.delete().where(t.outbox_batches.c.id.in_(batch_ids)))
        for i in range(0, len(legacy_ids), 500):
            chunk = legacy_ids[i : i + 500]
            conn.execute(t.outbox.delete().where(member_of(conn, t.outbox.c.event_id, chunk)))


def pending(
    engine: Engine, out_exchange: str, older_than_seconds: float, limit: int = 1000
) -> Stored:
    """Rows left behind by a worker that died after its commit (at most about `limit`
    messages, oldest first; a batch row is never split)."""
    cutoff = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=older_than_seconds)
    found = Stored()
    with engine.connect() as conn:
        b = t.outbox_batches.c
        for row in conn.execute(
            sa.select(b.id, b.size, b.messages)
            .where(b.created_at <= cutoff)
            .order_by(b.id)
            .limit(limit)
        ):
            if found.messages and len(found.messages) + row.size > limit:
                break
            found.batch_ids.append(row.id)
            found.messages.extend(
                to_message(out_exchange, e, rk, body.encode())
                for e, rk, body in orjson.loads(row.messages)
            )
        o = t.outbox.c
        for row in conn.execute(
            sa.select(o.event_id, o.routing_key, o.body)
            .where(o.created_at <= cutoff)
            .order_by(o.id)
            .limit(max(0, limit - len(found.messages)))
        ):
            found.legacy_ids.append(row.event_id)
            found.messages.append(
                to_message(out_exchange, row.event_id, row.routing_key, row.body.encode())
            )
    return found


def backlog(engine: Engine) -> int:
    """Messages in the outbox (not rows)."""
    with engine.connect() as conn:
        batched = conn.execute(sa.select(sa.func.coalesce(sa.func.sum(t.outbox_batches.c.size), 0)))
        legacy = conn.execute(sa.select(sa.func.count()).select_from(t.outbox))
        return int(batched.scalar_one()) + int(legacy.scalar_one())

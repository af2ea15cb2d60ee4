"""The outbox: outputs are stored in the batch transaction and published after the commit.

If the worker dies between commit and publish, the rows stay and are relayed later, by this or
another worker; an output may then be published twice, always with the same event id.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from handlers.sharing.model import Output
from worker.broker import OutMessage
from worker.db import tables as t
from worker.db.repository import bulk_insert, member_of


def to_message(out_exchange: str, event_id: str, routing_key: str, body: bytes) -> OutMessage:
    return OutMessage(out_exchange, routing_key, body, message_id=event_id)


def store(conn: Connection, outputs: Sequence[Output], out_exchange: str) -> list[OutMessage]:
    """Insert the outputs into the outbox; returns them ready to publish."""
    if not outputs:
        return []
    now = dt.datetime.now(dt.UTC)
    messages = [
        to_message(out_exchange, o.event_id, o.routing_key, orjson.dumps(o.body)) for o in outputs
    ]
    bulk_insert(
        conn,
        t.outbox,
        [
            {
                "event_id": m.message_id,
                "routing_key": m.routing_key,
                "body": m.body.decode(),
                "created_at": now,
            }
            for m in messages
        ],
    )
    return messages


def delete(engine: Engine, event_ids: Sequence[str]) -> None:
    if not event_ids:
        return
    with engine.begin() as conn:
        for i in range(0, len(event_ids), 500):
            chunk = event_ids[i : i + 500]
            conn.execute(t.outbox.delete().where(member_of(conn, t.outbox.c.event_id, chunk)))


def pending(
    engine: Engine, older_than_seconds: float, limit: int = 1000
) -> list[tuple[str, str, bytes]]:
    """Rows left behind by a worker that died after its commit: (event_id, routing_key, body)."""
    cutoff = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=older_than_seconds)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(t.outbox.c.event_id, t.outbox.c.routing_key, t.outbox.c.body)
            .where(t.outbox.c.created_at <= cutoff)
            .order_by(t.outbox.c.id)
            .limit(limit)
        ).all()
    return [(r.event_id, r.routing_key, r.body.encode()) for r in rows]


def backlog(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(t.outbox)).scalar_one())

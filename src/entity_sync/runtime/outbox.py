"""The outbox: outputs are stored in the batch transaction and published after the commit.

One row per batch holds all of its outputs, so the outbox costs one insert and one delete per
batch, not per output. If the worker dies between commit and publish, the row stays and is
relayed later, by this or another worker; an output may then be published twice, always with
the same event id. Rows of the older per-output table (written by the previous release) are
relayed too. The rows themselves are read and written by store/outbox.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import orjson
from sqlalchemy.engine import Connection, Engine

from entity_sync.handlers.sharing.model import Output
from entity_sync.runtime.broker import OutMessage
from entity_sync.store import outbox as rows
from entity_sync.store.outbox import OutboxEntry

delete = rows.delete  # once the messages are confirmed: (engine, batch_ids, legacy_ids)
backlog = rows.backlog  # messages in the outbox (not rows), for the metrics and `status`


def to_message(out_exchange: str, entry: OutboxEntry) -> OutMessage:
    return OutMessage(out_exchange, entry.routing_key, entry.body, message_id=entry.event_id)


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
        OutMessage(out_exchange, o.routing_key, orjson.dumps(o.body), message_id=o.event_id)
        for o in outputs
    ]
    return Stored(messages=messages, batch_ids=[rows.insert_batch(conn, messages)])


def pending(
    engine: Engine, out_exchange: str, older_than_seconds: float, limit: int = 1000
) -> Stored:
    """Rows left behind by a worker that died after its commit (at most about `limit`
    messages, oldest first; a batch row is never split)."""
    found = rows.pending(engine, older_than_seconds, limit)
    return Stored(
        messages=[to_message(out_exchange, e) for e in found.entries],
        batch_ids=found.batch_ids,
        legacy_ids=found.legacy_ids,
    )

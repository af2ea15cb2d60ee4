"""Ingestion: move each DLQ's messages into `failed_messages`, then ack them.

Why: looking at a RabbitMQ queue in place changes it. `basic.get` then requeue marks a message
redelivered, and on a quorum queue every return counts against the delivery limit (20 by
default in RabbitMQ 4), after which the broker drops or dead-letters it. So, as ServiceControl
does with its error queue, the operations layer drains each DLQ into the database and every
read (CLI, console) is a SELECT.

At least once, idempotent by key: a batch of rows is committed before its messages are acked.
A crash in between leaves the messages in the DLQ; ingesting them again finds the same
(queue, message id, replay count) and only counts a copy.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import structlog
from kombu.connection import Connection
from kombu.entity import Queue
from sqlalchemy.engine import Engine

from entity_sync.operations.context import DlqError, close_channel
from entity_sync.operations.letters import DeadLetter, from_message
from entity_sync.store import failed

log = structlog.get_logger("entity_sync.ingest")
BATCH = 200


@dataclass(frozen=True, slots=True)
class Ingested:
    queue: str
    messages: int


def _when(value: str, default: dt.datetime) -> dt.datetime:
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return default
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def row_of(letter: DeadLetter, now: dt.datetime) -> dict[str, Any]:
    """The row of one ingested copy; `now` must differ per message (it orders the rows)."""
    at = _when(letter.failed_at, now)
    first = _when(str(letter.headers.get("x-first-failure-at") or ""), at)
    return {
        "queue": letter.queue,
        "message_id": letter.id,
        "routing_key": letter.routing_key,
        "headers": letter.headers,
        "properties": {k: v for k, v in letter.properties.items() if v is not None},
        "body": letter.body,
        "body_text": letter.text(),
        "error_type": letter.error_type[:255],
        "error_message": letter.error_message,
        "fingerprint": letter.fingerprint,
        "replays": letter.replays,
        "first_failed_at": first,
        "last_failed_at": at,
        "ingested_at": now,
    }


def ingest(conn: Connection, engine: Engine, queue: str) -> Ingested:
    """Drain `queue` (a DLQ) into the store, BATCH messages per transaction."""
    channel = conn.channel()
    channel.auto_decode = False
    try:
        try:
            depth = int(channel.queue_declare(queue=queue, passive=True)[1])
        except conn.channel_errors as exc:
            raise DlqError(
                f"queue {queue} does not exist (run `entity-sync topology declare`)",
                reason="unknown_queue",
            ) from exc
        bound = Queue(queue, no_declare=True)(channel)
        taken = 0
        # Up to the depth seen at the start: a worker dead-lettering meanwhile cannot keep
        # a read waiting; the next read takes the rest.
        while taken < depth:
            batch: list[Any] = []
            while len(batch) < BATCH and taken + len(batch) < depth:
                message = bound.get(no_ack=False)
                if message is None:
                    break
                batch.append(message)
            if not batch:
                break
            now = dt.datetime.now(dt.UTC)
            with engine.begin() as db:
                for i, message in enumerate(batch):
                    at = now + dt.timedelta(microseconds=i)
                    failed.upsert(db, row_of(from_message(queue, message), at))
            for message in batch:  # only once the rows are committed
                message.ack()
            taken += len(batch)
        if taken:
            log.debug("dlq ingested", queue=queue, messages=taken)
        return Ingested(queue, taken)
    finally:
        close_channel(channel)

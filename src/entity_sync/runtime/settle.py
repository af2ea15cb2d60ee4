"""Settling a batch: wait for its publishes' confirms, then ack its deliveries, then delete its
outbox rows. In that order, so a crash at any point repeats work and never loses it.

One batch is pending at a time: its outputs travel while the next batch is in the database.
A pending batch of an older connection is dropped, never acked (`Delivery.generation`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
import structlog
from kombu.connection import Connection
from sqlalchemy.engine import Engine

from entity_sync.runtime import outbox
from entity_sync.runtime.broker import ConfirmingPublisher
from entity_sync.runtime.delivery import Delivery
from entity_sync.runtime.observe import Observer
from entity_sync.runtime.result import BatchResult
from entity_sync.runtime.stats import WorkerStats
from entity_sync.runtime.topology import is_rabbitmq

log = structlog.get_logger("entity_sync.worker")

# A crash re-publishes (same ids) at most this much of already-confirmed outputs.
OUTBOX_CLEANUP_EVERY_SECONDS = 1.0


@dataclass
class _Pending:
    """A batch whose state is committed and outputs published, awaiting confirms and acks."""

    batch: list[Delivery]
    result: BatchResult
    started: float  # time.monotonic() when the batch was taken


@dataclass
class _Link:
    """The connection the deliveries of the current generation came on."""

    conn: Connection
    channel: Any
    publisher: ConfirmingPublisher
    generation: int


class Settler:
    def __init__(self, engine: Engine, stats: WorkerStats, observer: Observer) -> None:
        self.engine = engine
        self.stats = stats
        self.observer = observer
        self._link: _Link | None = None
        self._pending: _Pending | None = None
        self._outbox_done: list[int] = []  # outbox rows of confirmed batches, to delete
        self._last_cleanup = 0.0

    def attach(
        self, conn: Connection, channel: Any, publisher: ConfirmingPublisher, generation: int
    ) -> None:
        """A new connection: acks go to its channel; the old one's pending batch is dropped."""
        self._link = _Link(conn, channel, publisher, generation)
        self._pending = None

    def hand_over(self, batch: list[Delivery], result: BatchResult, started: float) -> None:
        """`batch` is committed and `result.publish` published: settle it when confirmed."""
        self._pending = _Pending(batch, result, started)

    def settle_if_confirmed(self) -> None:
        """Ack as soon as the confirms are in, not after the next batch's transaction: a crash
        then redelivers (and repeats) less."""
        if self._pending is not None and self._link and self._link.publisher.all_confirmed:
            self.settle()

    def settle(self) -> None:
        """Wait for the pending batch's confirms, then ack it and clear its outbox rows."""
        pending, self._pending = self._pending, None
        if pending is None or self._link is None:
            return
        self._link.publisher.wait_for_confirms()
        self.ack(pending.batch)
        self._outbox_done.extend(pending.result.outbox_ids)
        if time.monotonic() - self._last_cleanup >= OUTBOX_CLEANUP_EVERY_SECONDS:
            self.clean_outbox()
        self._count(pending)

    def clean_outbox(self) -> None:
        """Delete the outbox rows of confirmed batches, a second's worth in one transaction
        while busy (a transaction per batch cost the loop about 5%), all of them when idle."""
        done, self._outbox_done = self._outbox_done, []
        self._last_cleanup = time.monotonic()
        try:
            outbox.delete(self.engine, done)
        except sa.exc.SQLAlchemyError as exc:
            # Published and acked; the relay publishes these rows again with the same ids.
            log.warning("outbox cleanup failed", error=str(exc)[:300])

    def _count(self, pending: _Pending) -> None:
        stats, result = self.stats, pending.result
        stats.batches += 1
        stats.last_batch_at = time.monotonic()
        stats.published += len(result.publish)
        stats.fates.update(result.fates)
        stats.lock_wait_seconds += result.lock_wait_seconds
        self.observer.batch_acked(pending.batch, result, stats.last_batch_at - pending.started)
        log.debug(
            "batch done", size=len(pending.batch), **{str(f): n for f, n in result.fates.items()}
        )

    def ack(self, batch: list[Delivery]) -> None:
        """Ack the deliveries of the current connection (tests inject a crash here)."""
        assert self._link is not None
        link = self._link
        current = [d for d in batch if d.generation == link.generation]
        if len(current) != len(batch):
            log.warning(
                "not acking deliveries of an old connection", count=len(batch) - len(current)
            )
        if not current:
            return
        if is_rabbitmq(link.conn):
            link.channel.basic_ack(max(d.delivery_tag for d in current), multiple=True)
        else:
            for delivery in current:
                delivery.raw.ack()

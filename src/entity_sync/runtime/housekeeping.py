"""Work the consumer loop does between batches: a chunk of a bulk fan-out after every batch and
when idle; when idle also the outbox relay, pruning old event ids and, on the embedded broker,
moving due retries back to their queue. Each job is bounded, so deliveries never wait long.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass

import sqlalchemy as sa
import structlog
from kombu.connection import Connection
from sqlalchemy.engine import Engine

from entity_sync.config import Settings
from entity_sync.runtime import heartbeat, outbox
from entity_sync.runtime.broker import ConfirmingPublisher, PublishFailed
from entity_sync.runtime.bulk import BulkRunner
from entity_sync.runtime.retry import EmbeddedRetryMover
from entity_sync.runtime.topology import Names
from entity_sync.store.processed import prune_processed

log = structlog.get_logger("entity_sync.worker")

# The database is unreachable (retry the same batch later) as opposed to refusing one row.
OUTAGE_ERRORS = (sa.exc.OperationalError, sa.exc.InterfaceError)
RELAY_EVERY_SECONDS = 5.0
PRUNE_EVERY_SECONDS = 600.0


@dataclass
class _Link:
    conn: Connection
    publisher: ConfirmingPublisher
    mover: EmbeddedRetryMover | None  # None on RabbitMQ: delay queues dead-letter by themselves


class Housekeeping:
    def __init__(self, settings: Settings, engine: Engine, bulk: BulkRunner | None) -> None:
        self.settings = settings
        self.engine = engine
        self.bulk = bulk  # bulk fan-outs, run a chunk at a time between batches
        self.out_exchange = Names(settings.prefix).out_exchange
        self._link: _Link | None = None
        self._last_relay = 0.0
        self._last_prune = 0.0

    def attach(
        self, conn: Connection, publisher: ConfirmingPublisher, mover: EmbeddedRetryMover | None
    ) -> None:
        """A new connection: relay what a dead worker left at once."""
        self._link = _Link(conn, publisher, mover)
        self.relay(force=True)

    def when_idle(self) -> bool:
        """Run what is due; True if a bulk chunk ran (the loop looks for deliveries first)."""
        if self.bulk_step():
            return True
        self.relay()
        self.prune()
        if self._link is not None and self._link.mover is not None:
            self._link.mover.move_due()
        return False

    def bulk_step(self) -> bool:
        """One chunk of a bulk fan-out, if one is waiting; True if a chunk ran.

        Between batches, so neither starves the other. The chunk waits for its confirms, and
        so for the pending batch's too, which the loop then acks at once.
        """
        if self.bulk is None or self._link is None or not self.bulk.due():
            return False
        conn = self._link.conn
        try:
            with heartbeat.while_busy(conn, self.settings.heartbeat_seconds):
                return self.bulk.step(self._link.publisher)
        except (*conn.connection_errors, *conn.channel_errors, PublishFailed):
            raise  # the broker: the run loop reconnects; the chunk's outbox rows are relayed
        except OUTAGE_ERRORS as exc:
            log.warning("bulk fan-out paused: database unavailable", error=str(exc)[:200])
        except Exception:  # a chunk that fails must not end the worker: try it again later
            log.exception("bulk fan-out chunk failed; trying again later")
        self.bulk.pause()
        return False

    def relay(self, *, force: bool = False) -> None:
        """Publish outbox rows a dead worker left behind (older than the relay age)."""
        now = time.monotonic()
        if self._link is None or (not force and now - self._last_relay < RELAY_EVERY_SECONDS):
            return
        self._last_relay = now
        try:
            left = outbox.pending(
                self.engine, self.out_exchange, self.settings.outbox_relay_age_seconds
            )
            if not left.messages:
                return
            self._link.publisher.publish_many(left.messages)
            outbox.delete(self.engine, left.batch_ids, left.legacy_ids)
            log.info("relayed outbox rows", count=len(left.messages))
        except sa.exc.SQLAlchemyError as exc:
            log.warning("outbox relay skipped: database unavailable", error=str(exc)[:200])

    def prune(self) -> None:
        """Now and then: forget event ids older than the retention."""
        now = time.monotonic()
        if now - self._last_prune < PRUNE_EVERY_SECONDS:
            return
        self._last_prune = now
        retention = dt.timedelta(days=self.settings.processed_retention_days)
        try:
            with self.engine.begin() as conn:
                pruned = prune_processed(conn, dt.datetime.now(dt.UTC) - retention)
        except sa.exc.SQLAlchemyError as exc:
            log.warning("pruning processed event ids skipped", error=str(exc)[:200])
            return
        if pruned:
            log.info("pruned processed event ids", count=pruned)

"""Running one batch through its processor until the database takes it.

A database outage holds the batch unacked and tries again with growing waits; a deadlock or
serialization failure runs it again at once; any other error finds the one delivery that fails
and gives it its fate (runtime/ack_policy.py) while the rest of the batch goes on.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
import structlog
from kombu.connection import Connection

from entity_sync.config import Settings
from entity_sync.runtime import ack_policy, heartbeat
from entity_sync.runtime.batch import Processor
from entity_sync.runtime.delivery import Delivery
from entity_sync.runtime.failure import Failure
from entity_sync.runtime.housekeeping import OUTAGE_ERRORS
from entity_sync.runtime.observe import Observer
from entity_sync.runtime.result import BatchResult
from entity_sync.runtime.stats import WorkerStats

log = structlog.get_logger("entity_sync.worker")


class Attempts:
    def __init__(
        self,
        processor: Processor,
        settings: Settings,
        stats: WorkerStats,
        observer: Observer,
        stopping: Callable[[], bool],
    ) -> None:
        self.processor = processor
        self.settings = settings
        self.stats = stats
        self.observer = observer
        self.stopping = stopping

    def run(
        self, conn: Connection, batch: list[Delivery], on_outage: Callable[[], None] | None = None
    ) -> BatchResult | None:
        """The batch's result; None if the worker stopped while the database was down.

        `on_outage` runs once the database is found down: ack what is already safe first.
        """
        delay = 0.2
        while True:
            try:
                with heartbeat.while_busy(conn, self.settings.heartbeat_seconds):
                    return self.processor.process(batch)
            except OUTAGE_ERRORS as exc:
                if _is_contention(exc):
                    # A deadlock or serialization failure between concurrent batches: the
                    # database rolled this one back; run it again at once.
                    self.stats.contention_retries += 1
                    log.info(
                        "batch rolled back by the database; running it again", error=str(exc)[:200]
                    )
                    continue
                if on_outage is not None:
                    on_outage()
                self._wait_out(conn, exc, delay, len(batch))
                if self.stopping():
                    return None
                delay = min(delay * 2, self.settings.db_retry_max_seconds)
            except Exception as exc:  # one delivery must not end the worker
                # A row the database refuses, or a bug a message runs into: find the delivery
                # and give it its fate by the error tree; the rest of the batch goes on.
                if not isinstance(exc, sa.exc.DBAPIError):
                    log.exception("batch failed; handling its deliveries one by one")
                return self._isolate(conn, batch, exc)

    def _wait_out(self, conn: Connection, exc: Exception, delay: float, size: int) -> None:
        self.stats.db_waits += 1
        self.observer.database_waiting(delay)
        log.error(
            "database unavailable; holding the batch unacked",
            database=self.settings.safe_database_url(),
            error=str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__,
            retry_in=delay,
            batch=size,
        )
        heartbeat.wait(delay, conn, self.stopping)

    def _isolate(self, conn: Connection, batch: list[Delivery], exc: Exception) -> BatchResult:
        """Run the deliveries of a failed batch one by one; the one that fails alone gets the
        failure's fate (retry or dead letter), the others are handled as usual."""
        if len(batch) == 1:
            result = BatchResult()
            ack_policy.fail(result, batch[0], Failure.of(exc), self.settings.max_attempts)
            return result
        merged = BatchResult()
        for delivery in batch:
            one = self.run(conn, [delivery])
            if one is not None:
                merged.merge(one)
        return merged


def _is_contention(exc: Exception) -> bool:
    """Deadlock detected (40P01) or serialization failure (40001): retry, not an outage."""
    return getattr(getattr(exc, "orig", None), "sqlstate", None) in ("40P01", "40001")

"""Prometheus metrics: an Observer of the consumer loop, a SyncObserver, scrape-time gauges.

Everything lives in the `Metrics` object's own CollectorRegistry (never the global one), so
tests and several apps in one process do not collide. Nothing here opens a connection until a
scrape asks for a scrape-time value (runtime/metrics_scrape.py).

Label values are bounded: queue names, failure reasons (machine codes), fates, configured
target entity ids, object types, SOAP service and operation names, session statuses.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry

from entity_sync.runtime import metric_families as families
from entity_sync.runtime.ack_policy import Fate
from entity_sync.runtime.metrics_scrape import (
    QueueStat,
    ScrapeTime,
    queue_stats,
    watched_queues,
)
from entity_sync.runtime.topology import Names
from entity_sync.schemas import reasons

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from entity_sync.config import Settings
    from entity_sync.runtime.delivery import Delivery
    from entity_sync.runtime.result import BatchResult

# The scrape-time helpers are used from here by `entity-sync status`.
__all__ = ["Metrics", "QueueStat", "queue_stats", "watched_queues"]

SESSION_STATUSES = ("finished", "finished_with_errors", "failed", "rejected")
SOAP_OPERATIONS = {
    "billing": ("login", "query", "queryMore"),
    "crm": ("login", "upsert", "query", "queryMore"),
}
FATES = (Fate.APPLIED, Fate.DUPLICATE, Fate.RETRIED, Fate.DEAD_LETTERED)


class Metrics:
    """The worker's metrics. Pass it to `App.run(observer=...)`; serve `registry`."""

    def __init__(
        self,
        *,
        engine: Engine | None = None,
        settings: Settings | None = None,
        readiness: Callable[[], bool] | None = None,
        clock: Callable[[], float] = time.time,
        queue_cache_seconds: float = 10.0,
        process_metrics: bool = True,
    ) -> None:
        self.registry = r = CollectorRegistry(auto_describe=True)
        self._clock = clock
        self._connection_lock = threading.Lock()
        self._connected: dict[str, bool] = {}
        self.consumed, self.acked, self.fates, self.retried, self.dead_lettered = (
            families.deliveries(r)
        )
        self.batch_size, self.batch_seconds, self.critical = families.batches(r)
        self.target_updates, self.share_exceptions = families.outputs(r)
        self.sync_sessions, self.soap_seconds = families.calls(r)
        self.broker_connected, self.db_waits, self.lock_wait_seconds, self.db_wait_seconds = (
            families.waits(r)
        )
        self.bulk_objects, self.bulk_outputs = families.bulk(r)
        self._preset_labels()
        if settings is not None:
            self._preset_queues(Names(settings.prefix))
        if process_metrics:
            families.process_collectors(r)
        r.register(ScrapeTime(engine, settings, readiness, queue_cache_seconds))

    def _preset_labels(self) -> None:
        """Series that exist before their first event, so dashboards and rate() see a zero."""
        for fate in FATES:
            self.fates.labels(fate)
        for status in SESSION_STATUSES:
            self.sync_sessions.labels(status)
        for service, operations in SOAP_OPERATIONS.items():
            for operation in operations:
                self.soap_seconds.labels(service, operation, "ok")
        for kind in ("backfill", "release"):
            self.bulk_objects.labels(kind)
            self.bulk_outputs.labels(kind)
        for reason in reasons.SHARE_EXCEPTION:
            self.share_exceptions.labels(reason)

    def _preset_queues(self, names: Names) -> None:
        for queue in names.bindings():
            self.consumed.labels(queue)
            self.acked.labels(queue)
            self.critical.labels(queue)
            for reason in reasons.DEAD_LETTER:
                self.dead_lettered.labels(queue, reason)
            for reason in reasons.TRANSIENT:
                self.retried.labels(queue, reason)

    # --- SyncObserver (handlers/observer.py): bootstrap passes this object to the clients ---

    def __enter__(self) -> Metrics:  # nothing to release; `with Metrics(...)` still reads well
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def soap_call(self, service: str, operation: str, seconds: float, ok: bool) -> None:
        self.soap_seconds.labels(service, operation, "ok" if ok else "error").observe(seconds)

    def sync_session(self, status: str) -> None:
        self.sync_sessions.labels(status).inc()

    # --- Observer ----------------------------------------------------------------------------

    def batch_acked(self, batch: list[Delivery], result: BatchResult, seconds: float) -> None:
        now = self._clock()
        per_queue: dict[str, int] = {}
        for delivery in batch:
            per_queue[delivery.queue] = per_queue.get(delivery.queue, 0) + 1
            stamp = _timestamp(delivery.properties.get("timestamp"))
            if stamp is not None:
                self.critical.labels(delivery.queue).observe(max(0.0, now - stamp))
        for queue, count in per_queue.items():
            self.consumed.labels(queue).inc(count)
            self.acked.labels(queue).inc(count)
        for fate, count in result.fates.items():
            self.fates.labels(fate).inc(count)
        for (queue, reason), count in result.retries.items():
            self.retried.labels(queue, reason).inc(count)
        for (queue, reason), count in result.dead_letters.items():
            self.dead_lettered.labels(queue, reason).inc(count)
        self._count_outputs(result)
        self.lock_wait_seconds.inc(result.lock_wait_seconds)
        self.batch_size.observe(len(batch))
        self.batch_seconds.observe(seconds)

    def _count_outputs(self, result: BatchResult) -> None:
        for (target, object_type), count in result.outputs.items():
            self.target_updates.labels(target, object_type).inc(count)
        for reason, count in result.exceptions.items():
            self.share_exceptions.labels(reason).inc(count)

    def connection_changed(self, up: bool) -> None:
        with self._connection_lock:
            self._connected[threading.current_thread().name] = up
            self.broker_connected.set(1.0 if all(self._connected.values()) else 0.0)

    def bulk_chunk(self, kind: str, objects: int, counts: BatchResult, seconds: float) -> None:
        self.bulk_objects.labels(kind).inc(objects)
        self.bulk_outputs.labels(kind).inc(sum(counts.outputs.values()))
        self._count_outputs(counts)

    def database_waiting(self, seconds: float) -> None:
        self.db_waits.inc()
        self.db_wait_seconds.inc(seconds)

    # --- reading back (tests, status) --------------------------------------------------------

    def names(self) -> Iterator[str]:
        """Every sample name this registry exposes now."""
        for family in self.registry.collect():
            for sample in family.samples:
                yield sample.name


def _timestamp(value: Any) -> float | None:
    """The AMQP timestamp as seconds since the epoch (py-amqp gives an int; a naive datetime,
    as some transports give, is UTC)."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, dt.datetime):
        return (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).timestamp()
    return None

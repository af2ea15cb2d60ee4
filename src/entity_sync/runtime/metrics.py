"""Prometheus metrics: an Observer of the consumer loop, SOAP and sync hooks, scrape-time gauges.

Everything lives in the `Metrics` object's own CollectorRegistry (never the global one), so
tests and several apps in one process do not collide. Nothing here opens a connection until a
scrape asks for a scrape-time value (outbox backlog, queue depths, readiness).

Label values are bounded: queue names, failure reasons (machine codes), fates, configured
target entity ids, object types, SOAP service and operation names, session statuses.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
import structlog
from kombu.connection import Connection
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from entity_sync.handlers.soap import timing
from entity_sync.handlers.sync import service as sync_service
from entity_sync.runtime import outbox
from entity_sync.runtime.broker import ensure_connected
from entity_sync.runtime.retry import delay_queues
from entity_sync.runtime.topology import Names
from entity_sync.schemas import reasons
from entity_sync.store import failed

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from entity_sync.config import Settings
    from entity_sync.runtime.batch import BatchResult
    from entity_sync.runtime.delivery import Delivery

log = structlog.get_logger("entity_sync.metrics")

NAMESPACE = "entity_sync"
BATCH_SIZE_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000)
HANDLING_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
# AMQP timestamps have whole-second resolution: the critical time is exact to about a second.
CRITICAL_BUCKETS = (0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200)
SOAP_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
SESSION_STATUSES = ("finished", "finished_with_errors", "failed", "rejected")
SOAP_OPERATIONS = {
    "billing": ("login", "query", "queryMore"),
    "crm": ("login", "upsert", "query", "queryMore"),
}
FATES = ("applied", "duplicate", "retried", "dead_lettered")


@dataclass(frozen=True, slots=True)
class QueueStat:
    queue: str
    kind: str  # input | dlq | retry | unrouted
    messages: int | None  # None: the queue does not exist
    consumers: int | None


def watched_queues(
    names: Names, delays: Mapping[str, Iterable[int]] | None = None
) -> list[tuple[str, str]]:
    """(queue, kind) of every queue of the topology: input, dlq, retry (delay), unrouted."""
    inputs = list(names.bindings())
    delays = delays or {}
    return [
        *[(q, "input") for q in inputs],
        *[(Names.dlq(q), "dlq") for q in inputs],
        *[(Names.retry_queue(q, d), "retry") for q in inputs for d in sorted(delays.get(q, ()))],
        (names.unrouted, "unrouted"),
    ]


def queue_stats(settings: Settings, names: Names) -> list[QueueStat]:
    """Depth and consumer count of every queue (passive declare; a missing queue is None).

    Opens one short-lived connection; raises the transport's connection errors.
    """
    conn = Connection(settings.broker_url, connect_timeout=5, heartbeat=None)
    try:
        ensure_connected(conn, retries=1)  # every URL of a failover list
        channel = conn.channel()
        stats: list[QueueStat] = []
        # Delay queues exist on RabbitMQ only (the embedded broker moves due retries itself).
        delays = {} if settings.embedded_broker else delay_queues(settings)
        for queue, kind in watched_queues(names, delays):
            try:
                ok = channel.queue_declare(queue=queue, passive=True)
            except conn.channel_errors:
                stats.append(QueueStat(queue, kind, None, None))
                with contextlib.suppress(Exception):
                    channel.close()
                channel = conn.channel()  # a failed passive declare closes the channel
                continue
            stats.append(QueueStat(queue, kind, int(ok.message_count), int(ok.consumer_count)))
        with contextlib.suppress(Exception):
            channel.close()
        return stats
    finally:
        with contextlib.suppress(Exception):
            conn.release()


def with_ingested(stats: list[QueueStat], engine: Engine | None) -> list[QueueStat]:
    """Add to each DLQ's depth the failed messages operators have ingested from it and not yet
    replayed or purged (store/failed.py): reading a DLQ must not hide failures from alerts."""
    if engine is None:
        return stats
    try:
        ingested = failed.open_by_queue(engine)
    except sa.exc.SQLAlchemyError:  # a schema before 0006: nothing ingested
        return stats
    return [
        dataclasses.replace(s, messages=s.messages + ingested[s.queue][1])
        if s.kind == "dlq" and s.messages is not None and s.queue in ingested
        else s
        for s in stats
    ]


class _ScrapeTime(Collector):
    """Gauges computed when Prometheus scrapes: outbox backlog, queue depths, readiness."""

    def __init__(
        self,
        engine: Engine | None,
        settings: Settings | None,
        readiness: Callable[[], bool] | None,
        queue_cache_seconds: float,
    ) -> None:
        self._engine = engine
        self._settings = settings
        self._readiness = readiness
        self._queue_cache_seconds = queue_cache_seconds
        self._queue_lock = threading.Lock()
        self._queue_cache: tuple[float, list[QueueStat]] | None = None

    def describe(self) -> Iterable[Metric]:
        return []  # collected lazily: describing must not reach the database or the broker

    def collect(self) -> Iterable[Metric]:
        if self._readiness is not None:
            ready = GaugeMetricFamily(
                f"{NAMESPACE}_ready",
                "1 when the worker is ready (broker consuming, database up, migrations current).",
            )
            try:
                ready.add_metric([], 1.0 if self._readiness() else 0.0)
            except Exception:  # noqa: BLE001 - a failing check means not ready
                ready.add_metric([], 0.0)
            yield ready
        if self._engine is not None:
            backlog = GaugeMetricFamily(
                f"{NAMESPACE}_outbox_backlog_messages",
                "Outputs committed but not yet published and confirmed (outbox rows).",
            )
            try:
                backlog.add_metric([], float(outbox.backlog(self._engine)))
                yield backlog
            except sa.exc.SQLAlchemyError as exc:
                log.warning("outbox backlog unavailable", error=str(exc).splitlines()[0][:200])
        if self._settings is not None:
            stats = self._queues()
            messages = GaugeMetricFamily(
                f"{NAMESPACE}_queue_messages",
                "Messages ready in each queue of the topology (passive declare); a DLQ's "
                "count includes failed messages ingested and not yet replayed or purged.",
                labels=["queue", "kind"],
            )
            consumers = GaugeMetricFamily(
                f"{NAMESPACE}_queue_consumers",
                "Consumers attached to each queue of the topology.",
                labels=["queue", "kind"],
            )
            for stat in stats:
                if stat.messages is not None:
                    messages.add_metric([stat.queue, stat.kind], float(stat.messages))
                    consumers.add_metric([stat.queue, stat.kind], float(stat.consumers or 0))
            yield messages
            yield consumers

    def _queues(self) -> list[QueueStat]:
        assert self._settings is not None
        with self._queue_lock:
            now = time.monotonic()
            if self._queue_cache and now - self._queue_cache[0] < self._queue_cache_seconds:
                return self._queue_cache[1]
            try:
                stats = with_ingested(
                    queue_stats(self._settings, Names(self._settings.prefix)), self._engine
                )
            except Exception as exc:  # noqa: BLE001 - no broker: no queue gauges this scrape
                log.warning("queue depths unavailable", error=str(exc)[:200])
                stats = []
            self._queue_cache = (now, stats)
            return stats


class Metrics:
    """The worker's metrics. Pass it to `App.run(observer=...)`; serve `registry`."""

    def __init__(
        self,
        *,
        engine: Engine | None = None,
        settings: Settings | None = None,
        readiness: Callable[[], bool] | None = None,
        registry: CollectorRegistry | None = None,
        clock: Callable[[], float] = time.time,
        queue_cache_seconds: float = 10.0,
        process_metrics: bool = True,
    ) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        self._clock = clock
        self._unsubscribe: list[Callable[[], None]] = []
        self._connection_lock = threading.Lock()
        self._connected: dict[str, bool] = {}
        r = self.registry
        ns = NAMESPACE
        self.consumed = Counter(
            f"{ns}_messages_consumed", "Deliveries taken from a queue and handled.", ["queue"],
            registry=r,
        )  # fmt: skip
        self.acked = Counter(
            f"{ns}_messages_acked", "Deliveries acked once their fate was settled.", ["queue"],
            registry=r,
        )  # fmt: skip
        self.fates = Counter(
            f"{ns}_message_fates",
            "Handled deliveries by fate: applied, duplicate, retried, dead_lettered.",
            ["fate"],
            registry=r,
        )
        self.retried = Counter(
            f"{ns}_messages_retried", "Transient failures sent back for a later attempt.",
            ["queue", "reason"], registry=r,
        )  # fmt: skip
        self.dead_lettered = Counter(
            f"{ns}_messages_dead_lettered", "Deliveries moved to their .dlq by the worker.",
            ["queue", "reason"], registry=r,
        )  # fmt: skip
        self.batch_size = Histogram(
            f"{ns}_batch_size_messages", "Deliveries per batch.", buckets=BATCH_SIZE_BUCKETS,
            registry=r,
        )  # fmt: skip
        self.batch_seconds = Histogram(
            f"{ns}_batch_handling_seconds",
            "Time from taking a batch to acking it (transaction, publish, confirms).",
            buckets=HANDLING_BUCKETS,
            registry=r,
        )
        self.critical = Histogram(
            f"{ns}_critical_time_seconds",
            "From the publisher's AMQP timestamp to the ack (deliveries with a timestamp).",
            ["queue"],
            buckets=CRITICAL_BUCKETS,
            registry=r,
        )
        self.target_updates = Counter(
            f"{ns}_target_updates",
            "target.<entity>.<type> updates published, by target entity and object type.",
            ["target_entity", "object_type"],
            registry=r,
        )
        self.share_exceptions = Counter(
            f"{ns}_share_exceptions", "share.exception outputs published, by reason.", ["reason"],
            registry=r,
        )  # fmt: skip
        self.sync_sessions = Counter(
            f"{ns}_sync_sessions", "Completed sync sessions by status.", ["status"], registry=r
        )
        self.soap_seconds = Histogram(
            f"{ns}_soap_call_seconds",
            "One SOAP round trip (each attempt), by service, operation and outcome.",
            ["service", "operation", "outcome"],
            buckets=SOAP_BUCKETS,
            registry=r,
        )
        self.broker_connected = Gauge(
            f"{ns}_broker_connected",
            "1 while every consumer of this process is connected and consuming.",
            registry=r,
        )
        self.db_waits = Counter(
            f"{ns}_database_waits", "Times a batch waited for an unreachable database.",
            registry=r,
        )  # fmt: skip
        self.lock_wait_seconds = Counter(
            f"{ns}_lock_wait_seconds",
            "Time batch transactions waited for the state locks (admin events run alone).",
            registry=r,
        )
        self.bulk_objects = Counter(
            f"{ns}_bulk_objects",
            "Objects handled by bulk fan-outs (backfill, release), by kind.",
            ["kind"],
            registry=r,
        )
        self.bulk_outputs = Counter(
            f"{ns}_bulk_outputs", "Outputs published by bulk fan-outs, by kind.", ["kind"],
            registry=r,
        )  # fmt: skip
        self.db_wait_seconds = Counter(
            f"{ns}_database_wait_seconds", "Time batches waited for the database.", registry=r
        )
        # Series that exist before their first event, so dashboards and rate() see a zero.
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
        if settings is not None:
            for queue in Names(settings.prefix).bindings():
                self.consumed.labels(queue)
                self.acked.labels(queue)
                self.critical.labels(queue)
                for reason in reasons.DEAD_LETTER:
                    self.dead_lettered.labels(queue, reason)
                for reason in reasons.TRANSIENT:
                    self.retried.labels(queue, reason)
        if process_metrics:
            from prometheus_client import GCCollector, PlatformCollector, ProcessCollector

            ProcessCollector(registry=r)
            PlatformCollector(registry=r)
            GCCollector(registry=r)
        r.register(_ScrapeTime(engine, settings, readiness, queue_cache_seconds))

    # --- hooks outside the consumer loop ---------------------------------------------------

    def install_hooks(self) -> Metrics:
        """Subscribe to SOAP call timings and sync session completions (undo with close)."""
        self._unsubscribe.append(timing.subscribe(self.soap_call))
        self._unsubscribe.append(sync_service.subscribe_sessions(self.sync_session))
        return self

    def close(self) -> None:
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe.clear()

    def __enter__(self) -> Metrics:
        return self.install_hooks()

    def __exit__(self, *exc: object) -> None:
        self.close()

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

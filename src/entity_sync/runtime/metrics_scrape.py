"""Gauges computed when Prometheus scrapes: readiness, outbox backlog, queue depths.

Nothing here opens a connection until a scrape (or `entity-sync status`) asks.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import sqlalchemy as sa
import structlog
from kombu.connection import Connection
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from entity_sync.runtime import outbox
from entity_sync.runtime.broker import ensure_connected
from entity_sync.runtime.retry import delay_queues
from entity_sync.runtime.topology import Names
from entity_sync.store import failed

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from entity_sync.config import Settings

log = structlog.get_logger("entity_sync.metrics")

NAMESPACE = "entity_sync"


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


class ScrapeTime(Collector):
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

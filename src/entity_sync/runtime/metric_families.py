"""The metric families of `Metrics` (runtime/metrics.py): one function per family, each
returning its metrics in the order `Metrics` names them. Names, labels and help texts are the
contract of the dashboards and alerts (deploy/)."""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)

from entity_sync.runtime.metrics_scrape import NAMESPACE

BATCH_SIZE_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000)
HANDLING_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
# AMQP timestamps have whole-second resolution: the critical time is exact to about a second.
CRITICAL_BUCKETS = (0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200)
SOAP_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
_NS = NAMESPACE


def deliveries(r: CollectorRegistry) -> tuple[Counter, Counter, Counter, Counter, Counter]:
    """consumed, acked, fates, retried, dead_lettered."""
    return (
        Counter(
            f"{_NS}_messages_consumed", "Deliveries taken from a queue and handled.", ["queue"],
            registry=r,
        ),
        Counter(
            f"{_NS}_messages_acked", "Deliveries acked once their fate was settled.", ["queue"],
            registry=r,
        ),
        Counter(
            f"{_NS}_message_fates",
            "Handled deliveries by fate: applied, duplicate, retried, dead_lettered.",
            ["fate"], registry=r,
        ),
        Counter(
            f"{_NS}_messages_retried", "Transient failures sent back for a later attempt.",
            ["queue", "reason"], registry=r,
        ),
        Counter(
            f"{_NS}_messages_dead_lettered", "Deliveries moved to their .dlq by the worker.",
            ["queue", "reason"], registry=r,
        ),
    )  # fmt: skip


def batches(r: CollectorRegistry) -> tuple[Histogram, Histogram, Histogram]:
    """batch_size, batch_seconds, critical."""
    return (
        Histogram(
            f"{_NS}_batch_size_messages", "Deliveries per batch.", buckets=BATCH_SIZE_BUCKETS,
            registry=r,
        ),
        Histogram(
            f"{_NS}_batch_handling_seconds",
            "Time from taking a batch to acking it (transaction, publish, confirms).",
            buckets=HANDLING_BUCKETS, registry=r,
        ),
        Histogram(
            f"{_NS}_critical_time_seconds",
            "From the publisher's AMQP timestamp to the ack (deliveries with a timestamp).",
            ["queue"], buckets=CRITICAL_BUCKETS, registry=r,
        ),
    )  # fmt: skip


def outputs(r: CollectorRegistry) -> tuple[Counter, Counter]:
    """target_updates, share_exceptions."""
    return (
        Counter(
            f"{_NS}_target_updates",
            "target.<entity>.<type> updates published, by target entity and object type.",
            ["target_entity", "object_type"], registry=r,
        ),
        Counter(
            f"{_NS}_share_exceptions", "share.exception outputs published, by reason.",
            ["reason"], registry=r,
        ),
    )  # fmt: skip


def calls(r: CollectorRegistry) -> tuple[Counter, Histogram]:
    """sync_sessions, soap_seconds."""
    return (
        Counter(
            f"{_NS}_sync_sessions", "Completed sync sessions by status.", ["status"], registry=r
        ),
        Histogram(
            f"{_NS}_soap_call_seconds",
            "One SOAP round trip (each attempt), by service, operation and outcome.",
            ["service", "operation", "outcome"], buckets=SOAP_BUCKETS, registry=r,
        ),
    )  # fmt: skip


def waits(r: CollectorRegistry) -> tuple[Gauge, Counter, Counter, Counter]:
    """broker_connected, db_waits, lock_wait_seconds, db_wait_seconds."""
    return (
        Gauge(
            f"{_NS}_broker_connected",
            "1 while every consumer of this process is connected and consuming.",
            registry=r,
        ),
        Counter(
            f"{_NS}_database_waits", "Times a batch waited for an unreachable database.",
            registry=r,
        ),
        Counter(
            f"{_NS}_lock_wait_seconds",
            "Time batch transactions waited for the state locks (admin events run alone).",
            registry=r,
        ),
        Counter(
            f"{_NS}_database_wait_seconds", "Time batches waited for the database.", registry=r
        ),
    )  # fmt: skip


def bulk(r: CollectorRegistry) -> tuple[Counter, Counter]:
    """bulk_objects, bulk_outputs."""
    return (
        Counter(
            f"{_NS}_bulk_objects", "Objects handled by bulk fan-outs (backfill, release), by kind.",
            ["kind"], registry=r,
        ),
        Counter(
            f"{_NS}_bulk_outputs", "Outputs published by bulk fan-outs, by kind.", ["kind"],
            registry=r,
        ),
    )  # fmt: skip


def process_collectors(r: CollectorRegistry) -> None:
    ProcessCollector(registry=r)
    PlatformCollector(registry=r)
    GCCollector(registry=r)

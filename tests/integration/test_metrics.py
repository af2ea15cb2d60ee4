"""Every metric of issue 5 moves as expected on a live /metrics scrape of a running worker
(RabbitMQ + PostgreSQL; events published with pika, as an upstream system would)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from entity_sync.handlers.sync.memory import InMemorySyncLocks, InMemorySyncStore
from entity_sync.handlers.sync.service import SyncService
from entity_sync.runtime.topology import Names
from entity_sync_sandbox import start_billing_sandbox, start_crm_sandbox
from tests.deploy.live import Scrape, live_worker
from tests.support import scenario as sc
from tests.support.amqp import PikaPublisher, bind_output_queue, drain, queue_depth
from tests.support.runner import settings_for
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

ADMIN_Q, OBJECT_Q = "entity-admin", "object-shared"


@pytest.fixture
def retry_queue_cleanup(broker_url: str, prefix: str) -> Iterator[None]:
    """Delay queues are not in the shared cleanup: delete those these tests can declare."""
    yield
    import contextlib

    import pika

    from tests.support.amqp import pika_params

    with pika.BlockingConnection(pika_params(broker_url)) as conn:
        for queue in Names(prefix).bindings():
            for delay in (1, 5, 30, 120):
                ch = conn.channel()
                with contextlib.suppress(Exception):
                    ch.queue_delete(Names.retry_queue(queue, delay))


def _q(prefix: str, name: str) -> str:
    return f"{prefix}.{name}"


@pytest.mark.usefixtures("rabbit_cleanup", "retry_queue_cleanup")
def test_a_live_scrape_shows_every_metric_moving(
    broker_url: str, database_url: str, prefix: str
) -> None:
    """One run, scraped three times: idle, after the traffic settled, and after stopping."""
    settings = settings_for(
        prefix, broker_url, database_url, max_attempts=2, retry_delays="1", batch_size=50
    )
    admin_q, object_q = _q(prefix, ADMIN_Q), _q(prefix, OBJECT_Q)
    with live_worker(settings) as live:
        _check_idle(live.scrape(), object_q)

        out_queue = bind_output_queue(broker_url, prefix)
        stamped = _publish_traffic(broker_url, prefix)
        total = stamped + 1  # and the poison
        # The orphan is delivered twice (first attempt, then the retry after 1 s).
        wait_for(lambda: _acked(live.scrape()) >= total + 1, 60, "every delivery acked")
        wait_for(lambda: queue_depth(broker_url, Names.dlq(object_q)) == 2, 30, "two dead letters")
        after = live.scrape()

        _check_deliveries(after, admin_q, object_q, stamped)
        _check_target_updates(after, broker_url, out_queue)
        _check_batches_and_critical_time(after, object_q, stamped)
        _check_scrape_time_gauges(after, object_q)

        live.stop()
        stopped = live.scrape()
        assert stopped.value("entity_sync_ready") == 0
        assert stopped.value("entity_sync_queue_consumers", queue=object_q) == 0


def _acked(scrape: Scrape) -> float:
    return scrape.value("entity_sync_messages_acked_total")


def _check_idle(before: Scrape, object_q: str) -> None:
    """Before any traffic: connected, ready, consuming, nothing acked, the backlog gauge there."""
    assert before.value("entity_sync_broker_connected") == 1
    assert before.value("entity_sync_ready") == 1
    assert ("entity_sync_outbox_backlog_messages", frozenset()) in before.samples
    assert before.value("entity_sync_messages_acked_total", queue=object_q) == 0
    assert before.value("entity_sync_queue_consumers", queue=object_q) == 1


def _publish_traffic(broker_url: str, prefix: str) -> int:
    """The admin and object phases and an orphan rate plan, timestamped, then one poison
    message without a timestamp. Returns how many timestamped messages were published."""
    publisher = PikaPublisher(broker_url, f"{prefix}.in")
    stamped = 0
    published_at = int(time.time())
    for routing_key, body in [*sc.admin_phase(), *sc.object_phase()]:
        publisher.publish(routing_key, body, timestamp=published_at)
        stamped += 1
    # A rate plan whose product never arrives: retried once, then dead-lettered.
    orphan = sc.obj("product_rate_plan", "rp-orphan", 1, {"name": "x"}, parent="p-missing")
    publisher.publish(orphan[0], orphan[1], timestamp=published_at)
    stamped += 1
    # Poison, published without a timestamp: dead-lettered, and not in the critical time.
    publisher.publish("object.shared.product", b"{not json")
    publisher.close()
    return stamped


def _check_deliveries(after: Scrape, admin_q: str, object_q: str, stamped: int) -> None:
    """Consumed and acked per queue; fates, dead letters and retries with their reasons."""
    total = stamped + 1  # and the poison
    n_admin = len(sc.admin_phase())
    assert after.value("entity_sync_messages_consumed_total", queue=admin_q) == n_admin
    assert after.value("entity_sync_messages_acked_total", queue=admin_q) == n_admin
    assert after.value("entity_sync_messages_acked_total", queue=object_q) == total + 1 - n_admin
    assert after.value("entity_sync_message_fates_total", fate="applied") >= stamped - 1
    assert after.value("entity_sync_message_fates_total", fate="retried") == 1
    assert after.value("entity_sync_message_fates_total", fate="dead_lettered") == 2
    assert (
        after.value(
            "entity_sync_messages_dead_lettered_total", queue=object_q, reason="invalid_json"
        )
        == 1
    )
    assert (
        after.value(
            "entity_sync_messages_dead_lettered_total", queue=object_q, reason="parent_unknown"
        )
        == 1
    )
    assert (
        after.value("entity_sync_messages_retried_total", queue=object_q, reason="parent_unknown")
        == 1
    )


def _check_target_updates(after: Scrape, broker_url: str, out_queue: str) -> None:
    """Target updates by target: connected targets got the product tree, pending ones not; the
    update and share-exception counters match what was published."""
    for target in ("t-auto", "t-manual"):
        assert after.value("entity_sync_target_updates_total", target_entity=target) >= 3
        assert (
            after.value(
                "entity_sync_target_updates_total", target_entity=target, object_type="product"
            )
            >= 1
        )
    assert after.value("entity_sync_target_updates_total", target_entity="t-pending") == 0
    published = drain(broker_url, out_queue)
    targets = [m for m in published if m.routing_key.startswith("target.")]
    assert after.value("entity_sync_target_updates_total") == len(targets)
    assert after.value("entity_sync_share_exceptions_total", reason="target_has_own_periods") >= 1
    exceptions = [m for m in published if m.routing_key.startswith("share.exception.")]
    assert after.value("entity_sync_share_exceptions_total") == len(exceptions)


def _check_batches_and_critical_time(after: Scrape, object_q: str, stamped: int) -> None:
    """Batch histograms: every acked delivery is in one batch. Critical time: each stamped
    delivery once (the orphan twice), the poison not at all."""
    assert after.value("entity_sync_batch_size_messages_sum") == _acked(after)
    batches = after.value("entity_sync_batch_size_messages_count")
    assert batches >= 1
    assert after.value("entity_sync_batch_handling_seconds_count") == batches
    assert after.value("entity_sync_batch_handling_seconds_sum") > 0

    n_admin = len(sc.admin_phase())
    assert after.value("entity_sync_critical_time_seconds_count") == stamped + 1
    assert after.value("entity_sync_critical_time_seconds_sum") >= 1  # the retry waited 1 s
    assert (
        after.value("entity_sync_critical_time_seconds_bucket", queue=object_q, le="+Inf")
        == stamped + 1 - n_admin
    )


def _check_scrape_time_gauges(after: Scrape, object_q: str) -> None:
    """Outbox drained, DLQ depth seen, still connected and ready."""
    assert after.value("entity_sync_outbox_backlog_messages") == 0
    assert after.value("entity_sync_queue_messages", queue=Names.dlq(object_q), kind="dlq") == 2
    assert after.value("entity_sync_broker_connected") == 1
    assert after.value("entity_sync_ready") == 1


@pytest.mark.soap
def test_sync_sessions_and_soap_latency_reach_the_registry() -> None:
    """Metrics, passed to the sync service as its observer, gets the session statuses and the
    SOAP call timings of its clients (sandboxes over HTTP); a service built without it does not
    report there."""
    from entity_sync.runtime.metrics import Metrics
    from entity_sync.schemas.inputs import SyncRequest

    billing, crm = start_billing_sandbox(), start_crm_sandbox()
    metrics = Metrics(process_metrics=False)
    service = _sync_service(billing.url, crm.url, observer=metrics)
    unobserved = _sync_service(billing.url, crm.url)
    request = SyncRequest.model_validate(
        {
            "request_id": "6f1c1f8e-2d7e-4c49-9f0e-8a4c5f6b7d10",
            "object_type": "billing_account",
            "zuora_ids": ["0a" + "0" * 29 + "1"],
            "origin": "api",
            "requested_by": "metrics-test",
            "requested_at": "2026-11-20T09:00:00Z",
        }
    )
    try:
        completed = service.handle(request)
        not_counted = unobserved.handle(request)
        scrape = Scrape.parse(_exposition(metrics))
    finally:
        service.close()
        unobserved.close()
        billing.stop()
        crm.stop()
    assert not_counted["status"] == completed["status"]
    assert scrape.value("entity_sync_sync_sessions_total", status=completed["status"]) == 1
    assert scrape.value("entity_sync_sync_sessions_total") == 1
    for service_name in ("billing", "crm"):
        assert (
            scrape.value(
                "entity_sync_soap_call_seconds_count",
                service=service_name,
                operation="login",
                outcome="ok",
            )
            == 1
        )
    assert (
        scrape.value("entity_sync_soap_call_seconds_count", service="billing", operation="query")
        >= 1
    )
    assert scrape.value("entity_sync_soap_call_seconds_sum", service="billing") > 0


def _sync_service(billing_url: str, crm_url: str, **options: Any) -> SyncService:
    from pydantic import SecretStr

    from entity_sync.handlers.soap.config import BillingSettings, CrmSettings

    fast: dict[str, Any] = {
        "password": SecretStr("sandbox"),
        "backoff_seconds": 0.001,
        "backoff_max_seconds": 0.01,
    }
    return SyncService(
        BillingSettings(endpoint=billing_url, username="sandbox", **fast),
        CrmSettings(endpoint=crm_url, username="sandbox", **fast),
        locks=InMemorySyncLocks(),
        store=InMemorySyncStore(),
        **options,
    )


def _exposition(metrics: object) -> str:
    from prometheus_client import generate_latest

    from entity_sync.runtime.metrics import Metrics

    assert isinstance(metrics, Metrics)
    return generate_latest(metrics.registry).decode()

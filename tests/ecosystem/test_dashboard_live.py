"""The Grafana dashboard against a real Prometheus: Debian's Prometheus scrapes two worker
processes while a scenario runs on real RabbitMQ and PostgreSQL; then every panel's PromQL
(template variables substituted) goes through Prometheus's HTTP API and must return data, with
the values the panel should show: the facts of the scenario, not one copy per worker."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from entity_sync.runtime.topology import Names
from entity_sync_sandbox import SEEDS, start_billing_sandbox, start_crm_sandbox
from entity_sync_sandbox.seed import load_seed
from tests.deploy.conftest import DEPLOY, ROOT
from tests.deploy.live import Scrape
from tests.ecosystem.dashboard_panels import (
    SCRAPE_SECONDS,
    Scenario,
    by_labels,
    check_panels,
    totals,
)
from tests.ecosystem.prometheus import Prometheus, running_prometheus, stop
from tests.support import scenario as sc
from tests.support.amqp import PikaPublisher, Received, bind_output_queue, drain, queue_depth
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.ecosystem, pytest.mark.integration]

ACCOUNT = "0a000000000000000000000000000001"  # in the billing seed, with a CrmId


def test_totals_reads_a_rate_panel_as_counter_totals() -> None:
    assert (
        totals('sum by (q) (rate(a_total{k="v"}[4s])) / sum(increase(b_total[4s]))')
        == 'sum by (q) (a_total{k="v"}) / sum(b_total)'
    )


@contextmanager
def worker_process(env: dict[str, str], log: Path) -> Iterator[str]:
    """One `entity-sync run`-like process; yields its host:port once it is ready."""
    with log.open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.ecosystem.worker_process"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
        )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()  # the endpoint is up before the migrations
        assert url.startswith("http://127.0.0.1:"), log.read_text()[-3000:]

        def ready() -> bool:
            try:
                with urllib.request.urlopen(url + "/readyz", timeout=5) as resp:  # noqa: S310
                    return int(resp.status) == 200
            except (urllib.error.URLError, OSError):
                return proc.poll() is not None

        wait_for(ready, 60, f"worker {url} to be ready", status=lambda: log.read_text()[-3000:])
        assert proc.poll() is None, log.read_text()[-3000:]
        yield url.removeprefix("http://")
    finally:
        stop(proc, 60)
        assert proc.returncode == 0 or proc.returncode < 0, log.read_text()[-3000:]


def _depth_is(broker_url: str, queue: str, depth: int) -> bool:
    return queue_depth(broker_url, queue) == depth


def _scrape(target: str) -> Scrape:
    with urllib.request.urlopen(f"http://{target}/metrics", timeout=10) as resp:
        return Scrape.parse(resp.read().decode())


@pytest.mark.usefixtures("rabbit_cleanup")
def test_every_panel_shows_the_scenario_once_with_two_workers(
    broker_url: str, database_url: str, prefix: str, tmp_path: Path
) -> None:
    names = Names(prefix)
    admin_q, object_q, sync_q = (
        f"{prefix}.{q}" for q in ("entity-admin", "object-shared", "sync-request")
    )
    with ExitStack() as stack:
        billing = start_billing_sandbox(load_seed(SEEDS / "billing.json"))
        crm = start_crm_sandbox(load_seed(SEEDS / "crm.json"))
        stack.callback(billing.stop)
        stack.callback(crm.stop)
        env = {
            **os.environ,
            "ENTITY_SYNC_PREFIX": prefix,
            "ENTITY_SYNC_BROKER_URL": broker_url,
            "ENTITY_SYNC_DATABASE_URL": database_url,
            "ENTITY_SYNC_BATCH_LINGER_MS": "5",
            "ENTITY_SYNC_HEARTBEAT_SECONDS": "0",
            "ENTITY_SYNC_MAX_ATTEMPTS": "2",
            "ENTITY_SYNC_RETRY_DELAYS": "1",
            "ENTITY_SYNC_LOG_FORMAT": "json",
            "ENTITY_SYNC_LOG_LEVEL": "warning",
            "ENTITY_SYNC_BILLING_ENDPOINT": billing.url,
            "ENTITY_SYNC_CRM_ENDPOINT": crm.url,
            "ENTITY_SYNC_BILLING_USERNAME": "sandbox",
            "ENTITY_SYNC_BILLING_PASSWORD": "sandbox",
            "ENTITY_SYNC_CRM_USERNAME": "sandbox",
            "ENTITY_SYNC_CRM_PASSWORD": "sandbox",
        }
        workers = [
            stack.enter_context(worker_process(env, tmp_path / f"worker-{i}.log")) for i in (1, 2)
        ]
        (tmp_path / "prom").mkdir()
        prom = stack.enter_context(
            running_prometheus(
                tmp_path / "prom", workers, [DEPLOY / "prometheus" / "alerts.yml"], SCRAPE_SECONDS
            )
        )
        wait_for(
            lambda: prom.query("sum(up)") == {frozenset(): 2.0},
            60,
            "Prometheus to scrape both workers",
            status=lambda: prom.api("/api/v1/targets"),
        )
        start = time.time()
        expected = run_scenario(broker_url, prefix, workers)
        done = time.time()
        # Panels are read once Prometheus has scraped both workers after the scenario settled.
        wait_for(
            lambda: (
                prom.query(f"count(timestamp(entity_sync_ready) > {done:.3f})")
                == {frozenset(): 2.0}
            ),
            30,
            "a scrape of both workers after the scenario",
        )
        scenario = Scenario(expected, admin_q, object_q, sync_q, names)
        check_panels(prom, scenario, start, time.time())
        check_rules(prom, names.dlq(object_q), names.dlq(admin_q))


@dataclass
class _Publishing:
    """Publishes one message at a time and waits until the workers acked its deliveries: with
    two competing workers, a child sent together with its parent could be handled first and
    retried, and the scenario's figures would depend on timing."""

    publisher: PikaPublisher
    workers: list[str]
    sent: Counter[str] = field(default_factory=Counter)  # deliveries expected per queue

    def acked(self, queue: str) -> float:
        return sum(
            _scrape(w).value("entity_sync_messages_acked_total", queue=queue) for w in self.workers
        )

    def publish(self, queue: str, routing_key: str, body: Any, deliveries: int = 1) -> None:
        stamp = {} if isinstance(body, bytes) else {"timestamp": int(time.time())}
        self.publisher.publish(routing_key, body, **stamp)
        self.sent[queue] += deliveries
        wait_for(
            lambda: self.acked(queue) == self.sent[queue],
            60,
            f"{routing_key} acked in {queue}",
            status=lambda: self.acked(queue),
        )


def _publish_phases(run: _Publishing, prefix: str) -> dict[str, str]:
    """Every phase of the scenario; returns the events the rules reject (id -> reason)."""
    admin_q, object_q = f"{prefix}.entity-admin", f"{prefix}.object-shared"
    # entity-admin (one active consumer): the admin phase and a schema-invalid body.
    for routing_key, body in sc.admin_phase():
        run.publish(admin_q, routing_key, body)
    run.publish(admin_q, "entity.upserted", b"[1, 2, 3]")
    # object-shared: the catalogue, an orphan (retried once, then dead-lettered), invalid
    # JSON, then updates, a duplicate, a stale event and three the rules reject.
    for routing_key, body in sc.object_phase():
        run.publish(object_q, routing_key, body)
    orphan = sc.obj("product_rate_plan", "rp-orphan", 1, {"name": "x"}, parent="p-missing")
    run.publish(object_q, *orphan, deliveries=2)
    run.publish(object_q, "object.shared.product", b"{not json")
    changes, rejected = sc.change_phase()
    for routing_key, body in changes:
        run.publish(object_q, routing_key, body)
    request = {
        "request_id": sc.eid(),
        "object_type": "billing_account",
        "zuora_ids": [ACCOUNT],
        "origin": "api",
        "requested_by": "dashboard-test",
        "requested_at": sc.T,
    }
    run.publish(f"{prefix}.sync-request", "sync.request", request)
    return rejected


def run_scenario(broker_url: str, prefix: str, workers: list[str]) -> dict[str, Any]:
    """Publishes the scenario phase by phase, each waited for; returns what the broker saw."""
    admin_q, object_q = f"{prefix}.entity-admin", f"{prefix}.object-shared"
    out_queue = bind_output_queue(broker_url, prefix)
    run = _Publishing(PikaPublisher(broker_url, f"{prefix}.in"), workers)
    outputs: list[Received] = []

    def sync_completed() -> bool:
        outputs.extend(drain(broker_url, out_queue))
        return any(m.routing_key == "sync.completed" for m in outputs)

    try:
        rejected = _publish_phases(run, prefix)
        wait_for(sync_completed, 120, "sync.completed")
    finally:
        run.publisher.close()
    dlq = {
        Names.dlq(object_q): len(rejected) + 2,  # + the orphan and the invalid JSON
        Names.dlq(admin_q): 1,
    }
    _settle(broker_url, workers, dlq)
    outputs.extend(drain(broker_url, out_queue))
    dead_lettered = {
        **{(object_q, reason): 1 for reason in rejected.values()},
        (object_q, "parent_unknown"): 1,
        (object_q, "invalid_json"): 1,
        (admin_q, "schema_invalid"): 1,
    }
    return _expected(run.sent, dlq, dead_lettered, object_q, outputs)


def _settle(broker_url: str, workers: list[str], dlq: dict[str, int]) -> None:
    for queue, depth in dlq.items():
        wait_for(partial(_depth_is, broker_url, queue, depth), 30, f"{depth} in {queue}")
    wait_for(
        lambda: all(_scrape(w).value("entity_sync_outbox_backlog_messages") == 0 for w in workers),
        30,
        "an empty outbox",
    )


def _expected(
    sent: Counter[str],
    dlq: dict[str, int],
    dead_lettered: dict[tuple[str, str], int],
    object_q: str,
    outputs: list[Received],
) -> dict[str, Any]:
    completed = [m.json() for m in outputs if m.routing_key == "sync.completed"]
    return {
        "acked": dict(sent),
        "dlq": dlq,
        "dead_lettered": dead_lettered,
        "retried": {(object_q, "parent_unknown"): 1},
        "targets": Counter(
            m.routing_key.split(".")[1] for m in outputs if m.routing_key.startswith("target.")
        ),
        "exceptions": Counter(
            m.json()["reason"] for m in outputs if m.routing_key.startswith("share.exception.")
        ),
        "sessions": Counter(c["status"] for c in completed),
        "completed": completed,
    }


def check_rules(prom: Prometheus, *grown_dlqs: str) -> None:
    """The alert rules evaluate on real data without errors, and the DLQ alert is pending once
    per queue that grew, not once per worker."""
    rules = [r for g in prom.api("/api/v1/rules")["groups"] for r in g["rules"]]
    assert len(rules) == 8
    assert all(r["health"] == "ok" for r in rules), rules

    def pending() -> dict[tuple[str, ...], float]:
        alerts = prom.query('ALERTS{alertname="EntitySyncDeadLettersGrowing"}')
        return by_labels(alerts, "queue", "alertstate")

    wait_for(
        lambda: pending() == {(q, "pending"): 1.0 for q in grown_dlqs},
        30,
        "the DLQ alert pending once per queue",
        status=pending,
    )

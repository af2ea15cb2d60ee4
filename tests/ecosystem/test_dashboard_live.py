"""The Grafana dashboard against a real Prometheus: Debian's Prometheus scrapes two worker
processes while a scenario runs on real RabbitMQ and PostgreSQL; then every panel's PromQL
(template variables substituted) goes through Prometheus's HTTP API and must return data, with
the values the panel should show: the facts of the scenario, not one copy per worker."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from entity_sync.runtime.topology import Names
from entity_sync_sandbox import SEEDS, start_billing_sandbox, start_crm_sandbox
from entity_sync_sandbox.seed import load_seed
from tests.deploy.conftest import DEPLOY, ROOT
from tests.deploy.live import Scrape
from tests.ecosystem.prometheus import Prometheus, Vector, running_prometheus, stop
from tests.support import scenario as sc
from tests.support.amqp import PikaPublisher, Received, bind_output_queue, drain, queue_depth
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.ecosystem, pytest.mark.integration]

DASHBOARDS = sorted((DEPLOY / "grafana" / "dashboards").glob("*.json"))
SCRAPE_SECONDS = 1
# Grafana's $__rate_interval at its floor: four scrape intervals.
GRAFANA_VARIABLES = {
    "__rate_interval": f"{4 * SCRAPE_SECONDS}s",
    "__interval": f"{SCRAPE_SECONDS}s",
    "__range": "5m",
}
ACCOUNT = "0a000000000000000000000000000001"  # in the billing seed, with a CrmId


def panels() -> list[tuple[str, str]]:
    """(panel title, expression with every template variable substituted) of each target."""
    found: list[tuple[str, str]] = []
    for path in DASHBOARDS:
        dashboard: dict[str, Any] = json.loads(path.read_text())
        variables = dict(GRAFANA_VARIABLES)
        for var in dashboard.get("templating", {}).get("list", []):
            current = var.get("current", {}).get("value")
            if var.get("type") != "datasource" and current is not None:
                variables[var["name"]] = "|".join(current) if isinstance(current, list) else current
        for panel in dashboard["panels"]:
            for target in panel.get("targets", []):
                expr = str(target["expr"])
                for name in sorted(variables, key=len, reverse=True):
                    expr = expr.replace("${" + name + "}", variables[name])
                    expr = expr.replace("$" + name, variables[name])
                assert "$" not in expr, f"{panel['title']}: unknown variable in {expr}"
                found.append((str(panel["title"]), expr))
    return found


def totals(expr: str) -> str:
    """The panel's expression over the counters themselves instead of their rate over the last
    few seconds: the same aggregation, read as totals since the workers started."""
    for func in ("rate", "increase"):
        while f"{func}(" in expr:
            start = expr.index(f"{func}(")
            inner_start = start + len(func) + 1
            end = expr.index("]", inner_start)
            selector = expr[inner_start : expr.rindex("[", inner_start, end)]
            assert expr[end + 1] == ")", expr
            expr = expr[:start] + selector + expr[end + 2 :]
    return expr


def test_totals_reads_a_rate_panel_as_counter_totals() -> None:
    assert (
        totals('sum by (q) (rate(a_total{k="v"}[4s])) / sum(increase(b_total[4s]))')
        == 'sum by (q) (a_total{k="v"}) / sum(b_total)'
    )


def _labels(vector: Vector, *names: str) -> dict[tuple[str, ...], float]:
    return {tuple(dict(k).get(n, "") for n in names): v for k, v in vector.items()}


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
        check_panels(prom, expected, start, time.time(), admin_q, object_q, sync_q, names)
        check_rules(prom, names.dlq(object_q), names.dlq(admin_q))


def run_scenario(broker_url: str, prefix: str, workers: list[str]) -> dict[str, Any]:
    """Publishes the scenario phase by phase, each waited for; returns what the broker saw."""
    admin_q, object_q = f"{prefix}.entity-admin", f"{prefix}.object-shared"
    out_queue = bind_output_queue(broker_url, prefix)
    publisher = PikaPublisher(broker_url, f"{prefix}.in")

    def acked(queue: str) -> float:
        return sum(
            _scrape(w).value("entity_sync_messages_acked_total", queue=queue) for w in workers
        )

    sent = Counter[str]()  # deliveries expected per queue

    def publish(queue: str, routing_key: str, body: Any, deliveries: int = 1) -> None:
        """One message, then wait until its deliveries are acked: with two competing workers,
        a child sent together with its parent could be handled first and retried, and the
        scenario's figures would depend on timing."""
        stamp = {} if isinstance(body, bytes) else {"timestamp": int(time.time())}
        publisher.publish(routing_key, body, **stamp)
        sent[queue] += deliveries
        wait_for(
            lambda: acked(queue) == sent[queue],
            60,
            f"{routing_key} acked in {queue}",
            status=lambda: acked(queue),
        )

    try:
        # entity-admin (one active consumer): the admin phase and a schema-invalid body.
        for routing_key, body in sc.admin_phase():
            publish(admin_q, routing_key, body)
        publish(admin_q, "entity.upserted", b"[1, 2, 3]")
        # object-shared: the catalogue, an orphan (retried once, then dead-lettered), invalid
        # JSON, then updates, a duplicate, a stale event and three the rules reject.
        for routing_key, body in sc.object_phase():
            publish(object_q, routing_key, body)
        orphan = sc.obj("product_rate_plan", "rp-orphan", 1, {"name": "x"}, parent="p-missing")
        publish(object_q, *orphan, deliveries=2)
        publish(object_q, "object.shared.product", b"{not json")
        changes, rejected = sc.change_phase()
        for routing_key, body in changes:
            publish(object_q, routing_key, body)
        request = {
            "request_id": sc.eid(),
            "object_type": "billing_account",
            "zuora_ids": [ACCOUNT],
            "origin": "api",
            "requested_by": "dashboard-test",
            "requested_at": sc.T,
        }
        publish(f"{prefix}.sync-request", "sync.request", request)
        outputs: list[Received] = []

        def sync_completed() -> bool:
            outputs.extend(drain(broker_url, out_queue))
            return any(m.routing_key == "sync.completed" for m in outputs)

        wait_for(sync_completed, 120, "sync.completed")
    finally:
        publisher.close()
    dlq = {
        Names.dlq(object_q): len(rejected) + 2,  # + the orphan and the invalid JSON
        Names.dlq(admin_q): 1,
    }
    for queue, depth in dlq.items():
        wait_for(partial(_depth_is, broker_url, queue, depth), 30, f"{depth} in {queue}")
    wait_for(
        lambda: all(_scrape(w).value("entity_sync_outbox_backlog_messages") == 0 for w in workers),
        30,
        "an empty outbox",
    )
    outputs.extend(drain(broker_url, out_queue))
    completed = [m.json() for m in outputs if m.routing_key == "sync.completed"]
    return {
        "acked": dict(sent),
        "dlq": dlq,
        "dead_lettered": {
            **{(object_q, reason): 1 for reason in rejected.values()},
            (object_q, "parent_unknown"): 1,
            (object_q, "invalid_json"): 1,
            (admin_q, "schema_invalid"): 1,
        },
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


def check_panels(
    prom: Prometheus,
    expected: dict[str, Any],
    start: float,
    end: float,
    admin_q: str,
    object_q: str,
    sync_q: str,
    names: Names,
) -> None:
    """Every panel returns data over the scenario, and shows the scenario's figures now."""
    dlq = expected["dlq"]
    checks: dict[str, Callable[[list[Vector]], None]] = {}

    def panel(title: str) -> Callable[[Callable[[list[Vector]], None]], None]:
        def register(check: Callable[[list[Vector]], None]) -> None:
            checks[title] = check

        return register

    @panel("Ready workers")
    def _(v: list[Vector]) -> None:
        assert v[0] == {frozenset(): 2.0}  # a count of workers: two by design

    @panel("Broker connected")
    def _(v: list[Vector]) -> None:
        assert v[0] == {frozenset(): 1.0}

    @panel("Outbox backlog")
    def _(v: list[Vector]) -> None:
        assert v[0] == {frozenset(): 0.0}

    @panel("Dead letters waiting")
    def _(v: list[Vector]) -> None:
        assert v[0] == {frozenset(): float(sum(dlq.values()))}  # not one copy per worker

    @panel("DLQ depth")
    def _(v: list[Vector]) -> None:
        assert _labels(v[0], "queue") == {
            (names.dlq(admin_q),): dlq[names.dlq(admin_q)],
            (names.dlq(object_q),): dlq[names.dlq(object_q)],
            (names.dlq(sync_q),): 0,
        }

    @panel("Queue depth")
    def _(v: list[Vector]) -> None:
        inputs, retries = v
        assert _labels(inputs, "queue") == {(admin_q,): 0, (object_q,): 0, (sync_q,): 0}
        assert _labels(retries, "queue") == {(names.retry_queue(object_q, 1),): 0}

    @panel("Throughput by fate")
    def _(v: list[Vector]) -> None:
        fates = _labels(v[0], "fate")
        assert fates[("dead_lettered",)] == sum(expected["dead_lettered"].values())
        assert fates[("retried",)] == sum(expected["retried"].values())
        assert fates[("duplicate",)] == 1  # the change phase sends one update twice
        assert sum(fates.values()) == sum(expected["acked"].values())  # every delivery once

    @panel("Acked by queue")
    def _(v: list[Vector]) -> None:
        assert {q: n for (q,), n in _labels(v[0], "queue").items()} == expected["acked"]

    @panel("Dead-lettered by reason")
    def _(v: list[Vector]) -> None:
        seen = {k: n for k, n in _labels(v[0], "queue", "reason").items() if n}
        assert seen == expected["dead_lettered"]

    @panel("Retries by reason")
    def _(v: list[Vector]) -> None:
        seen = {k: n for k, n in _labels(v[0], "queue", "reason").items() if n}
        assert seen == expected["retried"]

    @panel("Share exceptions by reason")
    def _(v: list[Vector]) -> None:
        seen = {r: n for (r,), n in _labels(v[0], "reason").items() if n}
        assert seen == expected["exceptions"]
        assert seen

    @panel("Target updates by target entity")
    def _(v: list[Vector]) -> None:
        assert {t: n for (t,), n in _labels(v[0], "target_entity").items()} == expected["targets"]

    @panel("Critical time (publish to ack)")
    def _(v: list[Vector]) -> None:
        for quantile in v:  # p50, p95, p99 of every stamped delivery, in seconds
            ((value),) = quantile.values()
            assert 0 < value <= 60

    @panel("Batches")
    def _(v: list[Vector]) -> None:
        ((mean_size,),) = [list(v[0].values())]
        assert 1 <= mean_size <= sum(expected["acked"].values())
        ((p95,),) = [list(v[1].values())]
        assert 0 < p95 <= 60

    @panel("Sync sessions by status")
    def _(v: list[Vector]) -> None:
        seen = {s: n for (s,), n in _labels(v[0], "status").items() if n}
        assert seen == expected["sessions"] == {"finished": 1}, json.dumps(expected["completed"])

    @panel("SOAP latency p95 by service and operation")
    def _(v: list[Vector]) -> None:
        called = {k for k, s in _labels(v[0], "service", "operation").items() if s == s and s > 0}
        assert {("billing", "login"), ("billing", "query"), ("crm", "login")} <= called

    @panel("SOAP calls by outcome")
    def _(v: list[Vector]) -> None:
        seen = {k: n for k, n in _labels(v[0], "service", "outcome").items() if n}
        assert set(seen) == {("billing", "ok"), ("crm", "ok")}

    @panel("Database waits")
    def _(v: list[Vector]) -> None:
        assert v == [{frozenset(): 0.0}, {frozenset(): 0.0}]

    @panel("Lock waits")
    def _(v: list[Vector]) -> None:
        [(labels, seconds)] = v[0].items()  # one series: summed over the workers
        assert labels == frozenset()
        assert 0 <= seconds < 60

    @panel("Bulk fan-outs (objects/s)")
    def _(v: list[Vector]) -> None:
        # The scenario's accepts and auto_accept came before any object: nothing to offer.
        assert _labels(v[0], "kind") == {("backfill",): 0.0, ("release",): 0.0}

    by_title: dict[str, list[str]] = {}
    for title, expr in panels():
        by_title.setdefault(title, []).append(expr)
    assert set(checks) == set(by_title), "every panel needs the values it should show"
    step = max(1.0, (end - start) / 200)
    for title, exprs in by_title.items():
        for expr in exprs:
            # As Grafana draws it: a range query over the scenario returns data.
            series = prom.query_range(expr, start, end, step)
            assert series, f"{title}: no data for {expr}"
        try:
            checks[title]([prom.query(totals(e)) for e in exprs])
        except AssertionError as exc:
            raise AssertionError(f"panel {title!r}: {exc}") from exc


def check_rules(prom: Prometheus, *grown_dlqs: str) -> None:
    """The alert rules evaluate on real data without errors, and the DLQ alert is pending once
    per queue that grew, not once per worker."""
    rules = [r for g in prom.api("/api/v1/rules")["groups"] for r in g["rules"]]
    assert len(rules) == 8
    assert all(r["health"] == "ok" for r in rules), rules

    def pending() -> dict[tuple[str, ...], float]:
        alerts = prom.query('ALERTS{alertname="EntitySyncDeadLettersGrowing"}')
        return _labels(alerts, "queue", "alertstate")

    wait_for(
        lambda: pending() == {(q, "pending"): 1.0 for q in grown_dlqs},
        30,
        "the DLQ alert pending once per queue",
        status=pending,
    )

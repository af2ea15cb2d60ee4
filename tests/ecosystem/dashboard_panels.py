"""The dashboards' panels as Prometheus queries, and what each panel should show after the
scenario of test_dashboard_live: one named group of checks per row of related panels, each
reading the scenario's facts from a Scenario."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from entity_sync.runtime.topology import Names
from tests.deploy.conftest import DEPLOY
from tests.ecosystem.prometheus import Prometheus, Vector

DASHBOARDS = sorted((DEPLOY / "grafana" / "dashboards").glob("*.json"))
SCRAPE_SECONDS = 1
# Grafana's $__rate_interval at its floor: four scrape intervals.
GRAFANA_VARIABLES = {
    "__rate_interval": f"{4 * SCRAPE_SECONDS}s",
    "__interval": f"{SCRAPE_SECONDS}s",
    "__range": "5m",
}

Check = Callable[[list[Vector]], None]
"""Asserts what one panel shows, given the totals of each of its expressions."""


@dataclass(frozen=True)
class Scenario:
    """What the panel checks share: the scenario's figures and its queues."""

    expected: dict[str, Any]
    admin_q: str
    object_q: str
    sync_q: str
    names: Names


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


def by_labels(vector: Vector, *names: str) -> dict[tuple[str, ...], float]:
    return {tuple(dict(k).get(n, "") for n in names): v for k, v in vector.items()}


def worker_panels(scenario: Scenario) -> dict[str, Check]:
    """Ready workers, broker connection, outbox backlog, dead letters waiting."""
    dlq = scenario.expected["dlq"]

    def ready_workers(v: list[Vector]) -> None:
        assert v[0] == {frozenset(): 2.0}  # a count of workers: two by design

    def broker_connected(v: list[Vector]) -> None:
        assert v[0] == {frozenset(): 1.0}

    def outbox_backlog(v: list[Vector]) -> None:
        assert v[0] == {frozenset(): 0.0}

    def dead_letters_waiting(v: list[Vector]) -> None:
        assert v[0] == {frozenset(): float(sum(dlq.values()))}  # not one copy per worker

    return {
        "Ready workers": ready_workers,
        "Broker connected": broker_connected,
        "Outbox backlog": outbox_backlog,
        "Dead letters waiting": dead_letters_waiting,
    }


def queue_panels(scenario: Scenario) -> dict[str, Check]:
    """Depths of the input, retry and dead-letter queues."""
    dlq = scenario.expected["dlq"]
    names, admin_q = scenario.names, scenario.admin_q
    object_q, sync_q = scenario.object_q, scenario.sync_q

    def dlq_depth(v: list[Vector]) -> None:
        assert by_labels(v[0], "queue") == {
            (names.dlq(admin_q),): dlq[names.dlq(admin_q)],
            (names.dlq(object_q),): dlq[names.dlq(object_q)],
            (names.dlq(sync_q),): 0,
        }

    def queue_depth(v: list[Vector]) -> None:
        inputs, retries = v
        assert by_labels(inputs, "queue") == {(admin_q,): 0, (object_q,): 0, (sync_q,): 0}
        assert by_labels(retries, "queue") == {(names.retry_queue(object_q, 1),): 0}

    return {"DLQ depth": dlq_depth, "Queue depth": queue_depth}


def delivery_panels(scenario: Scenario) -> dict[str, Check]:
    """What became of each delivery: acked, retried, dead-lettered, duplicate."""
    expected = scenario.expected

    def throughput_by_fate(v: list[Vector]) -> None:
        fates = by_labels(v[0], "fate")
        assert fates[("dead_lettered",)] == sum(expected["dead_lettered"].values())
        assert fates[("retried",)] == sum(expected["retried"].values())
        assert fates[("duplicate",)] == 1  # the change phase sends one update twice
        assert sum(fates.values()) == sum(expected["acked"].values())  # every delivery once

    def acked_by_queue(v: list[Vector]) -> None:
        assert {q: n for (q,), n in by_labels(v[0], "queue").items()} == expected["acked"]

    def dead_lettered_by_reason(v: list[Vector]) -> None:
        seen = {k: n for k, n in by_labels(v[0], "queue", "reason").items() if n}
        assert seen == expected["dead_lettered"]

    def retries_by_reason(v: list[Vector]) -> None:
        seen = {k: n for k, n in by_labels(v[0], "queue", "reason").items() if n}
        assert seen == expected["retried"]

    return {
        "Throughput by fate": throughput_by_fate,
        "Acked by queue": acked_by_queue,
        "Dead-lettered by reason": dead_lettered_by_reason,
        "Retries by reason": retries_by_reason,
    }


def sharing_panels(scenario: Scenario) -> dict[str, Check]:
    """Share exceptions, target updates and bulk fan-outs."""
    expected = scenario.expected

    def share_exceptions_by_reason(v: list[Vector]) -> None:
        seen = {r: n for (r,), n in by_labels(v[0], "reason").items() if n}
        assert seen == expected["exceptions"]
        assert seen

    def target_updates_by_target_entity(v: list[Vector]) -> None:
        assert {t: n for (t,), n in by_labels(v[0], "target_entity").items()} == expected["targets"]

    def bulk_fan_outs(v: list[Vector]) -> None:
        # The scenario's accepts and auto_accept came before any object: nothing to offer.
        assert by_labels(v[0], "kind") == {("backfill",): 0.0, ("release",): 0.0}

    return {
        "Share exceptions by reason": share_exceptions_by_reason,
        "Target updates by target entity": target_updates_by_target_entity,
        "Bulk fan-outs (objects/s)": bulk_fan_outs,
    }


def timing_panels(scenario: Scenario) -> dict[str, Check]:
    """Critical time, batches, database and lock waits."""
    expected = scenario.expected

    def critical_time(v: list[Vector]) -> None:
        for quantile in v:  # p50, p95, p99 of every stamped delivery, in seconds
            ((value),) = quantile.values()
            assert 0 < value <= 60

    def batches(v: list[Vector]) -> None:
        ((mean_size,),) = [list(v[0].values())]
        assert 1 <= mean_size <= sum(expected["acked"].values())
        ((p95,),) = [list(v[1].values())]
        assert 0 < p95 <= 60

    def database_waits(v: list[Vector]) -> None:
        assert v == [{frozenset(): 0.0}, {frozenset(): 0.0}]

    def lock_waits(v: list[Vector]) -> None:
        [(labels, seconds)] = v[0].items()  # one series: summed over the workers
        assert labels == frozenset()
        assert 0 <= seconds < 60

    return {
        "Critical time (publish to ack)": critical_time,
        "Batches": batches,
        "Database waits": database_waits,
        "Lock waits": lock_waits,
    }


def sync_panels(scenario: Scenario) -> dict[str, Check]:
    """Sync sessions and the SOAP calls they make."""
    expected = scenario.expected

    def sync_sessions_by_status(v: list[Vector]) -> None:
        seen = {s: n for (s,), n in by_labels(v[0], "status").items() if n}
        assert seen == expected["sessions"] == {"finished": 1}, json.dumps(expected["completed"])

    def soap_latency(v: list[Vector]) -> None:
        called = {k for k, s in by_labels(v[0], "service", "operation").items() if s == s and s > 0}
        assert {("billing", "login"), ("billing", "query"), ("crm", "login")} <= called

    def soap_calls_by_outcome(v: list[Vector]) -> None:
        seen = {k: n for k, n in by_labels(v[0], "service", "outcome").items() if n}
        assert set(seen) == {("billing", "ok"), ("crm", "ok")}

    return {
        "Sync sessions by status": sync_sessions_by_status,
        "SOAP latency p95 by service and operation": soap_latency,
        "SOAP calls by outcome": soap_calls_by_outcome,
    }


PANEL_GROUPS = (
    worker_panels,
    queue_panels,
    delivery_panels,
    sharing_panels,
    timing_panels,
    sync_panels,
)


def check_panels(prom: Prometheus, scenario: Scenario, start: float, end: float) -> None:
    """Every panel returns data over the scenario, and shows the scenario's figures now."""
    checks: dict[str, Check] = {}
    for group in PANEL_GROUPS:
        checks.update(group(scenario))
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

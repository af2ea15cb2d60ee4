"""Every metric the Grafana dashboard and the alert rules use is one a live worker exports."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests.deploy.conftest import DEPLOY, load_yaml
from tests.deploy.live import live_worker
from tests.support.runner import settings_for

DASHBOARD = DEPLOY / "grafana" / "dashboards" / "entity-sync.json"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"

PROMQL_WORDS = {
    # functions, aggregations and keywords used or likely to be used in these files
    "sum", "max", "min", "avg", "count", "rate", "irate", "increase", "delta", "deriv",
    "histogram_quantile", "absent", "by", "without", "and", "or", "unless", "on", "ignoring",
    "group_left", "group_right", "bool", "offset", "topk", "bottomk", "clamp_min", "vector",
}  # fmt: skip


def metric_names(expr: str) -> set[str]:
    """The series names an expression selects (labels, functions and durations removed)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # strings
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # ranges, $__rate_interval
    text = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", text)  # grouping labels
    text = re.sub(r"\$\w+", "", text)  # dashboard variables
    names = set(re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*", text))
    return {n for n in names if n not in PROMQL_WORDS and not re.fullmatch(r"\d\w*", n)}


def dashboard_exprs() -> list[str]:
    dashboard: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return [t["expr"] for p in dashboard["panels"] for t in p["targets"]]


def alert_exprs() -> list[str]:
    (rules,) = load_yaml(ALERTS)
    return [str(r["expr"]) for g in rules["groups"] for r in g["rules"]]


def test_the_expression_parser_finds_names_and_nothing_else() -> None:
    expr = (
        'histogram_quantile(0.95, sum by (le, queue) (rate(a_seconds_bucket{kind="x"}'
        "[$__rate_interval]))) / sum(rate(b_total[5m])) > 60 and absent(c)"
    )
    assert metric_names(expr) == {"a_seconds_bucket", "b_total", "c"}


def test_the_dashboard_shows_what_the_issue_asks_for() -> None:
    used = set().union(*(metric_names(e) for e in dashboard_exprs()))
    for needed in (
        "entity_sync_message_fates_total",  # throughput
        "entity_sync_critical_time_seconds_bucket",
        "entity_sync_queue_messages",  # DLQ depth
        "entity_sync_messages_retried_total",
        "entity_sync_share_exceptions_total",
        "entity_sync_sync_sessions_total",
        "entity_sync_soap_call_seconds_bucket",
    ):
        assert needed in used


def test_alerts_cover_dead_letters_critical_time_readiness_and_outbox() -> None:
    used = set().union(*(metric_names(e) for e in alert_exprs()))
    assert {
        "entity_sync_queue_messages",
        "entity_sync_critical_time_seconds_bucket",
        "entity_sync_ready",
        "entity_sync_outbox_backlog_messages",
    } <= used


@pytest.mark.integration
@pytest.mark.usefixtures("rabbit_cleanup")
def test_every_metric_used_is_exported_by_a_live_worker(
    broker_url: str, database_url: str, prefix: str
) -> None:
    used = set().union(*(metric_names(e) for e in [*dashboard_exprs(), *alert_exprs()]))
    assert used
    with live_worker(settings_for(prefix, broker_url, database_url)) as live:
        exported = live.scrape().names
    missing = used - exported
    assert not missing, f"used but not exported: {sorted(missing)}"

"""deploy/prometheus as Prometheus reads it: promtool checks the rules and the config, and runs
the alert unit tests in alerts/ (one file per alert: series that fire it and series that must
not, with several worker replicas)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.conftest import DEPLOY
from tests.ecosystem import tools

pytestmark = pytest.mark.ecosystem

ALERTS = DEPLOY / "prometheus" / "alerts.yml"
CONFIG = DEPLOY / "prometheus" / "prometheus.yml"
TESTS = Path(__file__).with_name("alerts")


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    exe = tools.executable("promtool")
    tools.version("promtool", [exe, "--version"])
    return subprocess.run(
        [exe, *args], capture_output=True, text=True, timeout=300, check=False, cwd=TESTS
    )


def alert_rules() -> dict[str, dict[str, Any]]:
    doc = yaml.safe_load(ALERTS.read_text())
    return {r["alert"]: r for g in doc["groups"] for r in g["rules"] if "alert" in r}


def _words(expr: str) -> str:
    return re.sub(r"\s+", " ", expr).strip()


def test_promtool_checks_the_rules() -> None:
    done = promtool("check", "rules", str(ALERTS))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in done.stdout


def test_promtool_checks_the_config_with_the_rule_path_rewritten(tmp_path: Path) -> None:
    config = yaml.safe_load(CONFIG.read_text())
    (rule_file,) = config["rule_files"]
    assert Path(rule_file).name == ALERTS.name  # the compose mount of alerts.yml
    config["rule_files"] = [str(ALERTS)]
    copy = tmp_path / "prometheus.yml"
    copy.write_text(yaml.safe_dump(config))
    done = promtool("check", "config", str(copy))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_every_alert_has_a_test_file_with_firing_quiet_and_replicas() -> None:
    rules = alert_rules()
    assert {p.name.removesuffix(".test.yml") for p in TESTS.glob("*.test.yml")} == set(rules)
    for name, rule in rules.items():
        doc = yaml.safe_load((TESTS / f"{name}.test.yml").read_text())
        assert doc["rule_files"] == ["../../../deploy/prometheus/alerts.yml"]
        checks = [c for t in doc["tests"] for c in t.get("alert_rule_test", [])]
        assert {c["alertname"] for c in checks} == {name}
        assert any(c["exp_alerts"] for c in checks), f"{name}: nothing makes it fire"
        assert any(not c["exp_alerts"] for c in checks), f"{name}: nothing must stay quiet"
        instances = [
            set(re.findall(r'instance="([^"]+)"', " ".join(s["series"] for s in t["input_series"])))
            for t in doc["tests"]
        ]
        assert max(len(i) for i in instances) >= 3, f"{name}: no test with several replicas"
        # An expression test must test the alert's own expression (its left-hand side).
        for test in doc["tests"]:
            for expr_test in test.get("promql_expr_test", []):
                assert _words(str(rule["expr"])).startswith(_words(expr_test["expr"])), name


def test_promtool_runs_the_alert_unit_tests() -> None:
    files = sorted(p.name for p in TESTS.glob("*.test.yml"))
    done = promtool("test", "rules", *files)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("SUCCESS") == len(files), done.stdout

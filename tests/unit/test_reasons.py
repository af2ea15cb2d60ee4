"""The reason codes in `entity_sync.schemas.reasons` are every reason the worker and rules raise."""

from __future__ import annotations

import ast
from pathlib import Path

from prometheus_client import generate_latest

from entity_sync.config import Settings
from entity_sync.runtime.metrics import Metrics
from entity_sync.schemas import reasons

ROOT = Path(__file__).resolve().parents[2] / "src" / "entity_sync"
SOURCES = [
    *sorted((ROOT / "handlers" / "sharing").glob("*.py")),
    ROOT / "handlers" / "errors.py",
    ROOT / "runtime" / "envelope.py",
    ROOT / "runtime" / "allowlist.py",
    ROOT / "runtime" / "batch.py",
    ROOT / "runtime" / "failure.py",
]
# Decision reasons (rule 9's audit log) and base-class defaults, not failure codes.
NOT_FAILURES = {
    "version_not_newer",
    "cascade",
    "backfill",
    "currency_release",
    "control_levels",
    "error",
    "permanent_error",
    "transient_error",
    "retry_later",
    "rejected",
    "configuration_error",
}


def _raised_reasons() -> set[str]:
    found: set[str] = set()
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text())):
            named = (isinstance(node, ast.keyword) and node.arg == "reason") or (
                isinstance(node, ast.Assign)
                and any(
                    isinstance(t, ast.Name) and t.id in {"reason", "REASON"} for t in node.targets
                )
            )
            if named:
                value = node.value  # type: ignore[attr-defined]
            elif isinstance(node, ast.Call) and getattr(node.func, "id", "") in ("Poison", "cls"):
                value = node.args[1] if len(node.args) > 1 else None
            else:
                continue
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                found.add(value.value)
    return found - NOT_FAILURES


def test_every_raised_reason_is_listed() -> None:
    raised = _raised_reasons()
    listed = set(reasons.DEAD_LETTER) | set(reasons.SHARE_EXCEPTION)
    assert raised - listed == set()
    assert {"wrong_queue", "invalid_json", "not_global_source", "parent_unknown"} <= raised


def test_known_label_values_are_exported_at_zero_before_any_event() -> None:
    metrics = Metrics(settings=Settings(prefix="p"), process_metrics=False)
    text = generate_latest(metrics.registry).decode()
    for reason in reasons.SHARE_EXCEPTION:
        assert f'entity_sync_share_exceptions_total{{reason="{reason}"}} 0.0' in text
    for queue in ("p.object-shared", "p.entity-admin", "p.sync-request"):
        for reason in reasons.DEAD_LETTER:
            line = f'entity_sync_messages_dead_lettered_total{{queue="{queue}",reason="{reason}"}}'
            assert f"{line} 0.0" in text
        for reason in reasons.TRANSIENT:
            line = f'entity_sync_messages_retried_total{{queue="{queue}",reason="{reason}"}}'
            assert f"{line} 0.0" in text

"""`entity-sync demo`: the whole sharing flow on the embedded default, explained in a table."""

from __future__ import annotations

import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa
from kombu.connection import Connection
from kombu.entity import Queue
from pydantic import SecretStr

from entity_sync.bootstrap import build, operations_for
from entity_sync.config import Settings
from entity_sync.handlers.errors import ConfigurationError
from entity_sync.handlers.soap.config import BillingSettings, CrmSettings
from entity_sync.operations import demo_story, dlq
from entity_sync.runtime import retry
from entity_sync.runtime.broker import ConfirmingPublisher, OutMessage, connect
from entity_sync.runtime.topology import Names, declare
from entity_sync.store import queries
from entity_sync.store.sync_store import DbSyncStore

INSTALL_HINT = "the SOAP sandboxes are not installed: pip install 'entity-sync[sandbox]'"


@dataclass
class DemoReport:
    data_dir: Path
    rows: list[list[str]] = field(default_factory=list)
    sync: list[list[str]] = field(default_factory=list)
    outputs: Counter[str] = field(default_factory=Counter)
    dead_letters: list[tuple[str, str]] = field(default_factory=list)
    applied: int = 0


def _sandboxes() -> tuple[Any, Any]:
    # An optional distribution, so imported here: without it the demo says how to install it.
    try:
        import entity_sync_sandbox
    except ImportError:
        raise ConfigurationError(INSTALL_HINT, reason="sandbox_missing") from None
    return entity_sync_sandbox.start_seeded()


def _soap_settings(billing: Any, crm: Any) -> tuple[BillingSettings, CrmSettings]:
    from entity_sync_sandbox import SANDBOX_PASSWORD, SANDBOX_USER

    common: dict[str, Any] = {"username": SANDBOX_USER, "password": SecretStr(SANDBOX_PASSWORD)}
    billing_url, crm_url = billing.url, crm.url
    return (
        BillingSettings(endpoint=billing_url, **common),
        CrmSettings(endpoint=crm_url, **common),
    )


def _publish(settings: Settings, events: list[demo_story.Event]) -> None:
    names = Names(settings.prefix)
    with connect(settings) as conn:
        declare(conn, names, retry.delay_queues(settings))
        publisher = ConfirmingPublisher(conn)
        publisher.publish_many(
            [
                OutMessage(
                    names.in_exchange,
                    rk,
                    orjson.dumps(body),
                    message_id=body.get("event_id") or body["request_id"],
                )
                for rk, body in events
            ]
        )
        publisher.close()


def _drain(settings: Settings, queue: str) -> list[Any]:
    with Connection(settings.broker_url) as conn:
        conn.transport.polling_interval = 0.01
        bound = Queue(queue, durable=True)(conn.default_channel)
        out = []
        while (msg := bound.get(no_ack=True)) is not None:
            out.append(msg)
        return out


def run_demo(data_dir: Path) -> DemoReport:
    """Publish the story step by step, run the worker until idle after each, and report."""
    if data_dir.exists():
        shutil.rmtree(data_dir)
    settings = Settings(
        data_dir=data_dir, broker_url="", database_url="", batch_linger_ms=5, log_level="warning"
    )
    app = build(settings)
    report = DemoReport(data_dir)
    billing, crm = _sandboxes()
    app.billing, app.crm = _soap_settings(billing, crm)
    try:
        app.upgrade_database()
        for _caption, events in [*demo_story.story(), ("on-demand sync", demo_story.syncs())]:
            _publish(settings, events)
            for stats in app.run(until_idle=0.5):
                report.applied += stats.fates["applied"]
        report.sync = _sync_rows(app.engine)
        names = app.names
        for msg in _drain(settings, names.unrouted):
            report.outputs[msg.delivery_info.get("routing_key", "")] += 1
        # Ingested like every read of the operations layer: `entity-sync console` on the
        # demo's data dir shows them afterwards.
        for letter in dlq.letters(operations_for(app, actor="demo", via="cli"), dlq.Filter()):
            body = orjson.loads(letter.body)
            report.dead_letters.append(
                (
                    f"{body.get('object_type', '?')} {body.get('object_id', '')} "
                    f"v{body.get('version', '?')} {body.get('action', '')}",
                    letter.error_type,
                )
            )
        report.rows = _rows(app.engine)
    finally:
        app.close()
        billing.stop()
        crm.stop()
    return report


def _sync_rows(engine: sa.Engine) -> list[list[str]]:
    rows: list[list[str]] = []
    for session in reversed(DbSyncStore(engine).recent()):
        for result in session["results"]:
            counts = sum(result["counts"].values())
            errors = "; ".join(f"{e['code']}: {e['message']}" for e in result["errors"])
            rows.append(
                [
                    session["status"],
                    result.get("crm_account_id") or "",
                    result["zuora_id"] or "",
                    result["status"],
                    f"{counts} records",
                    errors,
                ]
            )
    return rows


LABEL = {
    "product": "product",
    "product_rate_plan": "rate plan",
    "product_rate_plan_charge": "charge",
    "accounting_period": "period",
}
ORDER = {
    "product": 0,
    "product_rate_plan": 1,
    "product_rate_plan_charge": 2,
    "accounting_period": 3,
}


def _rows(engine: sa.Engine) -> list[list[str]]:
    """One row per (target, object): what it holds, and the decision that explains it."""
    snap = queries.snapshot(engine)
    targets, sources, copies = snap.targets, snap.sources, snap.copies
    why: dict[tuple[str, str], str] = {}
    for d in snap.object_decisions:
        if d.decision != "stale":  # a late, older version explains nothing about the copy
            for target in d.targets or [d.target_entity]:  # a shared row: several targets
                why[(target, d.object_id)] = f"{d.decision} ({d.reason}): {d.message}"
    rows: list[list[str]] = []
    for target in targets:
        for src in sorted(sources, key=lambda s: (ORDER[s.object_type], s.object_id)):
            held = copies.get((target, src.object_id))
            short = src.object_id if len(src.object_id) <= 12 else "…" + src.object_id[-4:]
            prices = ""
            if held is not None and isinstance(held.data.get("prices"), dict):
                prices = " ".join(sorted(held.data["prices"]))
            rows.append(
                [
                    target,
                    f"{LABEL[src.object_type]} {short}",
                    f"v{held.version} as {held.target_object_id[:8]}" if held else "-",
                    prices,
                    why.get(
                        (target, src.object_id),
                        f"nothing sent: connection {snap.link_status.get(target, 'missing')}",
                    ),
                ]
            )
    return rows

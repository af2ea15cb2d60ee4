"""On-demand sync end to end: sync.request published with pika, both SOAP sandboxes over HTTP,
RabbitMQ and PostgreSQL, sync.completed read from a queue bound to the out exchange."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from entity_sync.operations.cli.main import cli
from entity_sync.schemas.outputs import SyncCompleted
from entity_sync.store import tables as t
from entity_sync_sandbox import start_billing_sandbox, start_crm_sandbox
from entity_sync_sandbox.seed import load_seed
from tests.support.amqp import PikaPublisher, bind_output_queue, collect
from tests.support.runner import running_app, settings_for
from tests.support.scenario import entity
from tests.support.waiting import wait_for

SEEDS = Path(__file__).resolve().parents[2] / "sandbox" / "entity_sync_sandbox" / "seeds"
ACCOUNTS = [f"0a{'0' * 29}{n}" for n in (1, 2, 3)]  # the third has no CrmId
EU_ACCOUNT = f"0a{'0' * 29}5"  # held by the entity eu only
CRM_ACCOUNT = "001000000000001AAA"  # accounts 1 and 4 in the default entity, 5 in eu
LONELY_CRM_ACCOUNT = "001000000000009AAA"  # no billing account has it
PRODUCT = f"1a{'0' * 29}1"


@pytest.fixture
def sandboxes(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, Any]]:
    billing = start_billing_sandbox(load_seed(SEEDS / "billing.json"), entities={"eu"})
    crm = start_crm_sandbox(load_seed(SEEDS / "crm.json"))
    for service, handle in (("BILLING", billing), ("CRM", crm)):
        monkeypatch.setenv(f"ENTITY_SYNC_{service}_ENDPOINT", handle.url)
        monkeypatch.setenv(f"ENTITY_SYNC_{service}_USERNAME", "sandbox")
        monkeypatch.setenv(f"ENTITY_SYNC_{service}_PASSWORD", "sandbox")
        monkeypatch.setenv(f"ENTITY_SYNC_{service}_BACKOFF_SECONDS", "0.01")
    yield billing, crm
    billing.stop()
    crm.stop()


def request(ids: list[str], object_type: str = "billing_account", **kw: Any) -> dict[str, Any]:
    return {
        "request_id": kw.pop("request_id", str(uuid.uuid4())),
        "object_type": object_type,
        "zuora_ids": ids,
        "origin": kw.pop("origin", "api"),
        "requested_by": "it@example.com",
        "requested_at": "2026-11-20T12:00:00Z",
        **kw,
    }


@pytest.mark.integration
@pytest.mark.soap
@pytest.mark.usefixtures("rabbit_cleanup")
def test_sync_requests_end_to_end(
    broker_url: str, database_url: str, prefix: str, sandboxes: tuple[Any, Any]
) -> None:
    _billing, crm = sandboxes
    with running_app(settings_for(prefix, broker_url, database_url)) as app:
        out = bind_output_queue(broker_url, prefix)
        publisher = PikaPublisher(broker_url, f"{prefix}.in")
        publisher.publish(*entity("eu", ["EUR"]))  # the worker knows entities from the admin feed
        wait_for(
            lambda: "eu" in app.workers[1].processor.known_entities(),  # type: ignore[attr-defined]
            what="entity eu known",
        )
        accounts = request([*ACCOUNTS, EU_ACCOUNT], entity_by_id={EU_ACCOUNT: "eu"})
        too_many = request([f"{n:032x}" for n in range(9)], origin="ui")
        injection = request(["0a0000000000000000000000000001' or Id != '"])
        product = request([PRODUCT], object_type="product")
        for body in (accounts, too_many, injection, product):
            publisher.publish("sync.request", body)
        publisher.publish("sync.request", b"{not json")
        results = {m.message_id: m for m in collect(broker_url, out, 4, timeout=120)}
        upserts = crm.calls("upsert")
        publisher.publish("sync.request", accounts)  # redelivered request: answered, not re-run
        again = collect(broker_url, out, 1, timeout=60)[0]
        publisher.close()
        dead = collect(broker_url, f"{prefix}.sync-request.dlq", 1)

    assert crm.calls("upsert") == upserts
    assert again.json() == results[accounts["request_id"]].json()
    assert dead[0].headers["x-error-type"] == "invalid_json"
    done = {k: SyncCompleted.model_validate(m.json()) for k, m in results.items()}
    assert all(m.routing_key == "sync.completed" for m in results.values())

    acc = done[accounts["request_id"]]
    assert acc.status == "finished_with_errors"
    assert [r.status for r in acc.results] == ["synced", "synced", "failed", "synced"]
    assert acc.results[2].errors[0].code == "missing_crm_id"
    assert acc.results[0].counts["Zuora__CustomerAccount__c"] == 1
    assert acc.results[0].counts["Zuora__ZInvoice__c"] >= 1
    accounts_in_crm = crm.state.records["Zuora__CustomerAccount__c"].values()
    assert {r["Zuora__External_Id__c"] for r in accounts_in_crm} == {*ACCOUNTS[:2], EU_ACCOUNT}

    assert done[too_many["request_id"]].status == "rejected"
    assert "8" in (done[too_many["request_id"]].reason or "")
    assert done[injection["request_id"]].status == "rejected"
    assert done[product["request_id"]].status == "finished", done[product["request_id"]]
    assert done[product["request_id"]].results[0].counts["zqu__ProductRatePlanChargeTier__c"] == 8

    with app.engine.connect() as conn:
        stored = dict(
            conn.execute(sa.select(t.sync_sessions.c.request_id, t.sync_sessions.c.status)).all()
        )
    assert stored == {k: v.status for k, v in done.items()}


def crm_request(ids: list[str], **kw: Any) -> dict[str, Any]:
    body = request([], object_type="crm_account", **kw)
    del body["zuora_ids"]
    return {**body, "crm_account_ids": ids}


@pytest.mark.integration
@pytest.mark.soap
@pytest.mark.usefixtures("rabbit_cleanup")
def test_crm_account_requests_end_to_end(
    broker_url: str, database_url: str, prefix: str, sandboxes: tuple[Any, Any]
) -> None:
    _billing, crm = sandboxes
    with running_app(settings_for(prefix, broker_url, database_url)) as app:
        out = bind_output_queue(broker_url, prefix)
        publisher = PikaPublisher(broker_url, f"{prefix}.in")
        publisher.publish(*entity("eu", ["EUR"]))
        wait_for(
            lambda: "eu" in app.workers[1].processor.known_entities(),  # type: ignore[attr-defined]
            what="entity eu known",
        )
        default = crm_request([CRM_ACCOUNT, LONELY_CRM_ACCOUNT], origin="ui")
        in_eu = crm_request([CRM_ACCOUNT], entity_by_id={CRM_ACCOUNT: "eu"})
        both_lists = {**crm_request([CRM_ACCOUNT]), "zuora_ids": ACCOUNTS[:1]}
        for body in (default, in_eu, both_lists):
            publisher.publish("sync.request", body)
        results = {m.json()["request_id"]: m for m in collect(broker_url, out, 2, timeout=120)}
        publisher.close()
        dead = collect(broker_url, f"{prefix}.sync-request.dlq", 1)

    assert dead[0].headers["x-error-type"] == "schema_invalid"
    done = {k: SyncCompleted.model_validate(m.json()) for k, m in results.items()}
    first = done[default["request_id"]]
    assert first.status == "finished_with_errors"
    assert [(r.crm_account_id, r.zuora_id, r.status) for r in first.results] == [
        (CRM_ACCOUNT, ACCOUNTS[0], "synced"),
        (CRM_ACCOUNT, f"0a{'0' * 29}4", "synced"),
        (LONELY_CRM_ACCOUNT, None, "skipped"),
    ]
    assert first.results[2].errors[0].code == "no_billing_accounts"
    second = done[in_eu["request_id"]]
    assert second.status == "finished"
    assert [(r.crm_account_id, r.zuora_id) for r in second.results] == [(CRM_ACCOUNT, EU_ACCOUNT)]
    customers = {
        r["Zuora__External_Id__c"]: r
        for r in crm.state.records["Zuora__CustomerAccount__c"].values()
    }
    assert set(customers) == {ACCOUNTS[0], f"0a{'0' * 29}4", EU_ACCOUNT}
    assert customers[EU_ACCOUNT]["Name"] == "Customer 5 (EU)"
    assert {c["Zuora__Account__c"] for c in customers.values()} == {CRM_ACCOUNT}
    with app.engine.connect() as conn:
        kinds = set(conn.execute(sa.select(t.sync_sessions.c.object_type)).scalars())
    assert kinds == {"crm_account"}


@pytest.mark.integration
@pytest.mark.soap
@pytest.mark.usefixtures("rabbit_cleanup")
def test_sync_accounts_wait_prints_the_result_table(
    broker_url: str,
    database_url: str,
    prefix: str,
    sandboxes: tuple[Any, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = settings_for(prefix, broker_url, database_url)
    for name, value in (
        ("BROKER_URL", broker_url),
        ("DATABASE_URL", database_url),
        ("PREFIX", prefix),
    ):
        monkeypatch.setenv(f"ENTITY_SYNC_{name}", value)
    with running_app(settings):
        result = CliRunner().invoke(
            cli, ["sync", "accounts", *ACCOUNTS[:1], ACCOUNTS[2], "--wait", "--timeout", "120"]
        )
        by_crm = CliRunner().invoke(
            cli, ["sync", "crm-accounts", CRM_ACCOUNT, "--origin", "ui", "--wait"]
        )
        history = CliRunner().invoke(cli, ["sync", "history"])
    assert by_crm.exit_code == 0, by_crm.output
    assert ": finished" in by_crm.output
    assert "crm account" in by_crm.output
    rows = [line for line in by_crm.output.splitlines() if CRM_ACCOUNT in line]
    assert [row.split()[3] for row in rows] == [ACCOUNTS[0], f"0a{'0' * 29}4"]
    assert all("synced" in row for row in rows)
    assert result.exit_code == 0, result.output
    assert "finished_with_errors" in result.output
    assert ACCOUNTS[0] in result.output
    assert "missing_crm_id" in result.output
    assert "Zuora__CustomerAccount__c=1" in result.output
    assert history.exit_code == 0
    assert "finished_with_errors" in history.output
    assert "crm_account" in history.output
    assert "billing_account" in history.output

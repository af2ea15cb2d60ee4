"""The sync engine end to end against both sandboxes over HTTP (project WSDLs): accounts,
multi-entity, locks, faults and scale (product trees: test_sync_products.py)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from soapkit import account_seed, merge, request, zid

from entity_sync.handlers.sync.memory import InMemorySyncLocks, InMemorySyncStore
from entity_sync.handlers.sync.service import SyncService
from entity_sync.schemas.outputs import SyncCompleted
from entity_sync_sandbox import BillingSandboxHandle, CrmSandboxHandle
from entity_sync_sandbox.seed import EXAMPLE_SEEDS, load_seed

pytestmark = pytest.mark.soap

MakeBilling = Callable[..., BillingSandboxHandle]
MakeCrm = Callable[..., CrmSandboxHandle]
MakeService = Callable[..., tuple[SyncService, InMemorySyncStore]]

ACCOUNT_COUNTS = {
    "Zuora__CustomerAccount__c": 1,
    "Zuora__PaymentMethod__c": 1,
    "Zuora__Subscription__c": 2,
    "Zuora__SubscriptionRatePlan__c": 2,
    "Zuora__SubscriptionProductCharge__c": 4,
    "Zuora__ZInvoice__c": 3,
    "Zuora__Payment__c": 1,
}


def _valid(body: dict[str, Any]) -> SyncCompleted:
    return SyncCompleted.model_validate(body)


def test_account_sync_upserts_everything_parents_first(
    make_billing: MakeBilling, make_crm: MakeCrm, make_service: MakeService
) -> None:
    seed, (account_id,) = account_seed()
    billing, crm = make_billing(seed), make_crm()
    service, store = make_service(billing, crm)
    body = service.handle(request([account_id]))
    completed = _valid(body)
    assert completed.status == "finished"
    (result,) = completed.results
    assert result.status == "synced"
    assert result.errors == []
    assert result.counts == ACCOUNT_COUNTS
    customer = crm.state.find("Zuora__CustomerAccount__c", "Zuora__External_Id__c", account_id)
    assert customer is not None
    assert customer["Zuora__Account__c"] == "001000000000001AAA"
    assert customer["Zuora__BillToName__c"] == "Bill Payer1"
    for obj in ("Zuora__ZInvoice__c", "Zuora__Subscription__c", "Zuora__PaymentMethod__c"):
        assert all(
            customer["Id"]
            in (r.get("Zuora__BillingAccount__c"), r.get("Zuora__CustomerAccount__c"))
            for r in crm.state.all(obj)
        )
    charges = crm.state.all("Zuora__SubscriptionProductCharge__c")
    plan_ids = {r["Id"] for r in crm.state.all("Zuora__SubscriptionRatePlan__c")}
    assert {c["Zuora__SubscriptionRatePlan__c"] for c in charges} == plan_ids
    payment = crm.state.all("Zuora__Payment__c")[0]
    invoice = crm.state.find("Zuora__ZInvoice__c", "Zuora__External_Id__c", zid(0x08, 100_000))
    assert invoice is not None
    assert payment["Zuora__Invoice__c"] == invoice["Id"]
    assert store.recent(1) == [body]


def test_second_sync_updates_instead_of_creating(
    make_billing: MakeBilling, make_crm: MakeCrm, make_service: MakeService
) -> None:
    seed, ids = account_seed()
    billing, crm = make_billing(seed), make_crm()
    service, _ = make_service(billing, crm)
    service.handle(request(ids))
    before = {obj: len(crm.state.all(obj)) for obj in ACCOUNT_COUNTS}
    assert _valid(service.handle(request(ids))).status == "finished"
    assert {obj: len(crm.state.all(obj)) for obj in ACCOUNT_COUNTS} == before


def test_account_without_crm_id_fails_clearly_and_is_not_retried(
    make_billing: MakeBilling, make_crm: MakeCrm, make_service: MakeService
) -> None:
    good, good_ids = account_seed(1)
    bad, bad_ids = account_seed(1, crm_id=False, start=2)
    billing, crm = make_billing(merge(good, bad)), make_crm()
    service, _ = make_service(billing, crm)
    completed = _valid(service.handle(request(good_ids + bad_ids)))
    assert completed.status == "finished_with_errors"
    failed = completed.results[1]
    assert failed.status == "failed"
    assert [e.code for e in failed.errors] == ["missing_crm_id"]
    assert failed.counts == {}
    assert crm.state.find("Zuora__CustomerAccount__c", "Zuora__External_Id__c", bad_ids[0]) is None


def test_unknown_account_fails_with_not_found(
    make_billing: MakeBilling, make_crm: MakeCrm, make_service: MakeService
) -> None:
    service, _ = make_service(make_billing({}), make_crm())
    completed = _valid(service.handle(request([zid(0x0A, 99)])))
    assert completed.status == "failed"
    assert completed.results[0].errors[0].code == "not_found"


def test_invalid_request_is_rejected_and_nothing_is_called(
    make_billing: MakeBilling, make_crm: MakeCrm, make_service: MakeService
) -> None:
    billing, crm = make_billing({}), make_crm()
    service, store = make_service(billing, crm)
    ids = [zid(0x0A, n) for n in range(9)]
    completed = _valid(service.handle(request(ids, origin="ui")))
    assert completed.status == "rejected"
    assert completed.reason is not None
    assert completed.reason.startswith("too_many_ids")
    assert completed.results == []
    assert billing.calls() + crm.calls() == 0
    assert len(store.sessions) == 1


def test_an_account_already_syncing_is_skipped(
    make_billing: MakeBilling, make_crm: MakeCrm, make_service: MakeService
) -> None:
    seed, ids = account_seed(2)
    locks = InMemorySyncLocks()
    billing, crm = make_billing(seed), make_crm()
    service, _ = make_service(billing, crm, locks=locks)
    assert locks.try_acquire(f"billing_account:{ids[1]}", ttl_seconds=60)
    completed = _valid(service.handle(request(ids)))
    assert [r.status for r in completed.results] == ["synced", "skipped"]
    assert completed.results[1].errors[0].code == "already_syncing"
    assert completed.status == "finished_with_errors"
    assert locks.held() == {f"billing_account:{ids[1]}"}  # ours, untouched; the other released


def test_concurrent_requests_for_one_account_sync_it_once_at_a_time(
    make_billing: MakeBilling, make_crm: MakeCrm, make_service: MakeService
) -> None:
    seed, ids = account_seed()
    billing, crm = make_billing(seed, latency_ms=20), make_crm()
    service, _ = make_service(billing, crm)
    service.handle(request(ids))  # log in first so both requests race on the sync itself
    bodies: list[dict[str, Any]] = []
    start = threading.Barrier(2)

    def run() -> None:
        start.wait(timeout=5)
        bodies.append(service.handle(request(ids)))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    statuses = sorted(_valid(b).results[0].status for b in bodies)
    assert statuses == ["skipped", "synced"]


def test_multi_entity_logs_in_to_the_entity_and_needs_its_crm_record(
    make_billing: MakeBilling, make_crm: MakeCrm, make_service: MakeService
) -> None:
    eu, eu_ids = account_seed(1)
    us, us_ids = account_seed(1, start=2)
    ids = eu_ids + us_ids
    billing = make_billing({"entities": {"eu": eu, "us": us}})
    crm = make_crm({"zqu__BillingEntity__c": [{"Name": "eu"}]})
    service, _ = make_service(billing, crm)
    body = service.handle(
        request(ids, entity_by_id={ids[0]: "eu", ids[1]: "us"}), known_entities={"eu", "us"}
    )
    completed = _valid(body)
    assert [r.status for r in completed.results] == ["synced", "failed"]
    assert completed.results[1].errors[0].code == "billing_entity_missing"
    assert set(billing.state.logins) == {"eu", "us"}
    elsewhere = _valid(service.handle(request(eu_ids)))  # the default entity does not hold it
    assert elsewhere.results[0].errors[0].code == "not_found"


def test_unknown_entity_is_rejected(
    make_billing: MakeBilling, make_crm: MakeCrm, make_service: MakeService
) -> None:
    seed, ids = account_seed()
    service, _ = make_service(make_billing(seed), make_crm())
    completed = _valid(service.handle(request(ids, entity_by_id={ids[0]: "mars"})))
    assert completed.status == "rejected"
    assert completed.reason is not None
    assert completed.reason.startswith("unknown_entity")


def test_wrong_credentials_fail_every_id_with_one_login_call(
    make_billing: MakeBilling, make_crm: MakeCrm, make_service: MakeService
) -> None:
    seed, ids = account_seed(5)
    billing, crm = make_billing(seed), make_crm()
    service, _ = make_service(billing, crm, billing_options={"password": "wrong-Pa55word"})
    body = service.handle(request(ids))
    completed = _valid(body)
    assert completed.status == "failed"
    assert {e.code for r in completed.results for e in r.errors} == {"login_failed"}
    assert billing.calls() == 1
    assert crm.calls() == 0
    assert "wrong-Pa55word" not in str(body)


def test_session_expiry_in_the_middle_of_a_sync(
    make_billing: MakeBilling, make_crm: MakeCrm, make_service: MakeService
) -> None:
    seed, ids = account_seed(2)
    billing, crm = make_billing(seed), make_crm()
    service, _ = make_service(billing, crm, max_workers=1)
    billing.expire_sessions_after(6)
    crm.expire_sessions_after(4)
    completed = _valid(service.handle(request(ids)))
    assert completed.status == "finished"
    assert billing.calls("login") == 2
    assert crm.calls("login") == 2


def test_http_500_bursts_are_retried(
    make_billing: MakeBilling, make_crm: MakeCrm, make_service: MakeService
) -> None:
    seed, ids = account_seed(3)
    billing, crm = make_billing(seed), make_crm(fault_rate=0.15, rng_seed=7)
    service, _ = make_service(billing, crm, billing_options={"max_retries": 6},
                              crm_options={"max_retries": 6})  # fmt: skip
    billing.fail_next(3)
    completed = _valid(service.handle(request(ids)))
    assert completed.status == "finished"
    assert all(r.counts == ACCOUNT_COUNTS for r in completed.results)


def test_locked_rows_are_retried_and_lasting_locks_keep_their_code(
    make_billing: MakeBilling, make_crm: MakeCrm, make_service: MakeService
) -> None:
    seed, (account_id,) = account_seed(invoices=5)
    billing, crm = make_billing(seed), make_crm()
    crm.lock_rows([zid(0x08, 100_001), zid(0x08, 100_002)], times=1)
    crm.lock_rows([zid(0x08, 100_003)], times=1000)
    service, _ = make_service(billing, crm, crm_options={"max_retries": 3})
    completed = _valid(service.handle(request([account_id])))
    (result,) = completed.results
    assert completed.status == "finished_with_errors"
    assert result.status == "synced"
    assert result.counts["Zuora__ZInvoice__c"] == 4
    assert [(e.code, e.object, e.zuora_id) for e in result.errors] == [
        ("UNABLE_TO_LOCK_ROW", "Zuora__ZInvoice__c", zid(0x08, 100_003))
    ]


def test_slow_endpoints_still_sync(
    make_billing: MakeBilling, make_crm: MakeCrm, make_service: MakeService
) -> None:
    seed, ids = account_seed(2)
    billing, crm = make_billing(seed, latency_ms=30), make_crm(latency_ms=30)
    service, _ = make_service(billing, crm)
    completed = _valid(service.handle(request(ids)))
    assert completed.status == "finished"


def test_scale_over_2000_invoices_pages_and_chunks(
    make_billing: MakeBilling, make_crm: MakeCrm, make_service: MakeService
) -> None:
    seed, ids = account_seed(invoices=2150)
    billing, crm = make_billing(seed), make_crm()
    service, _ = make_service(billing, crm)
    completed = _valid(service.handle(request(ids)))
    assert completed.status == "finished"
    assert completed.results[0].counts["Zuora__ZInvoice__c"] == 2150
    assert billing.calls("queryMore") >= 1
    assert max(crm.state.upsert_sizes) == 200
    assert len(crm.state.all("Zuora__ZInvoice__c")) == 2150


def test_example_seeds_sync_for_demos(
    make_billing: MakeBilling, make_crm: MakeCrm, make_service: MakeService
) -> None:
    billing = make_billing(load_seed(EXAMPLE_SEEDS / "billing.json"), entities={"eu"})
    crm = make_crm(load_seed(EXAMPLE_SEEDS / "crm.json"))
    service, _ = make_service(billing, crm)
    ids = [zid(0x0A, n) for n in (1, 2, 3, 4, 5)]  # the fifth is in the entity eu
    completed = _valid(
        service.handle(request(ids, entity_by_id={ids[4]: "eu"}), known_entities={"eu"})
    )
    statuses = [r.status for r in completed.results]
    assert statuses == ["synced", "synced", "failed", "synced", "synced"]
    assert completed.results[2].errors[0].code == "missing_crm_id"
    product = _valid(service.handle(request([zid(0x1A, 1)], object_type="product")))
    assert product.status == "finished"

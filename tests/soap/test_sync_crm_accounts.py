"""Sync by CRM account against both sandboxes over HTTP: every billing account whose CrmId is
the requested CRM account, the limit on the accounts found, CRM accounts without any, and
multi-entity tenants where each entity holds its own accounts."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from soapkit import account_seed, crm_request, merge

from entity_sync.handlers.sync.memory import InMemorySyncLocks, InMemorySyncStore
from entity_sync.handlers.sync.service import SyncService
from entity_sync.schemas.outputs import SyncCompleted
from entity_sync_sandbox import BillingSandboxHandle, CrmSandboxHandle

pytestmark = pytest.mark.soap

MakeBilling = Callable[..., BillingSandboxHandle]
MakeCrm = Callable[..., CrmSandboxHandle]
MakeService = Callable[..., tuple[SyncService, InMemorySyncStore]]

X = "001Dn00000A1b2cIAB"  # a CRM account id, 18 characters (15 + case checksum)
Y = "001Dn00000B7xYzIAJ"
ENTITIES = {"zqu__BillingEntity__c": [{"Name": "eu"}, {"Name": "us"}]}


def _valid(body: dict[str, Any]) -> SyncCompleted:
    return SyncCompleted.model_validate(body)


def _customers(crm: CrmSandboxHandle) -> dict[str, dict[str, Any]]:
    return {r["Zuora__External_Id__c"]: r for r in crm.state.all("Zuora__CustomerAccount__c")}


def test_every_billing_account_of_the_crm_account_syncs(
    make_billing: MakeBilling, make_crm: MakeCrm, make_service: MakeService
) -> None:
    mine, mine_ids = account_seed(2, crm_id=X)
    other, _ = account_seed(1, crm_id=Y, start=3)
    loose, _ = account_seed(1, crm_id=False, start=4)
    billing, crm = make_billing(merge(mine, other, loose)), make_crm()
    service, store = make_service(billing, crm)
    body = service.handle(crm_request([X]))
    completed = _valid(body)
    assert completed.status == "finished"
    assert [(r.crm_account_id, r.zuora_id, r.status) for r in completed.results] == [
        (X, mine_ids[0], "synced"),
        (X, mine_ids[1], "synced"),
    ]
    assert all(r.counts["Zuora__SubscriptionProductCharge__c"] == 4 for r in completed.results)
    customers = _customers(crm)
    assert set(customers) == set(mine_ids)
    assert {c["Zuora__Account__c"] for c in customers.values()} == {X}
    assert store.recent(1) == [body]


def test_crm_ids_match_in_either_spelling_and_duplicates_are_rejected(
    make_billing: MakeBilling, make_crm: MakeCrm, make_service: MakeService
) -> None:
    short, short_ids = account_seed(1, crm_id=X[:15])  # the billing system kept 15 characters
    long, long_ids = account_seed(1, crm_id=X, start=2)
    billing, crm = make_billing(merge(short, long)), make_crm()
    service, _ = make_service(billing, crm)
    for spelling in (X, X[:15]):
        completed = _valid(service.handle(crm_request([spelling])))
        assert [r.zuora_id for r in completed.results] == short_ids + long_ids
    twice = _valid(service.handle(crm_request([X, X[:15]])))
    assert twice.status == "rejected"
    assert (twice.reason or "").startswith("duplicate_id:")


def test_a_crm_account_without_billing_accounts_is_skipped(
    make_billing: MakeBilling, make_crm: MakeCrm, make_service: MakeService
) -> None:
    seed, ids = account_seed(1, crm_id=X)
    billing, crm = make_billing(seed), make_crm()
    service, _ = make_service(billing, crm)
    completed = _valid(service.handle(crm_request([Y, X])))
    assert completed.status == "finished_with_errors"
    skipped, synced = completed.results
    assert (skipped.crm_account_id, skipped.zuora_id, skipped.status) == (Y, None, "skipped")
    assert [e.code for e in skipped.errors] == ["no_billing_accounts"]
    assert Y in skipped.errors[0].message
    assert (synced.crm_account_id, synced.zuora_id, synced.status) == (X, ids[0], "synced")
    alone = _valid(service.handle(crm_request([Y])))
    assert [r.status for r in alone.results] == ["skipped"]


@pytest.mark.parametrize(
    ("per_crm_account", "origin", "found"),
    [((11,), "api", 11), ((6, 5), "api", 11), ((9,), "ui", 9)],
)
def test_more_billing_accounts_than_the_limit_rejects_before_writing(
    make_billing: MakeBilling,
    make_crm: MakeCrm,
    make_service: MakeService,
    per_crm_account: tuple[int, ...],
    origin: str,
    found: int,
) -> None:
    seeds, start = [], 1
    for crm_id, n in zip((X, Y), per_crm_account, strict=False):
        seeds.append(account_seed(n, crm_id=crm_id, invoices=0, start=start)[0])
        start += n
    billing, crm = make_billing(merge(*seeds)), make_crm()
    service, store = make_service(billing, crm)
    crm_ids = [X, Y][: len(per_crm_account)]
    completed = _valid(service.handle(crm_request(crm_ids, origin=origin)))
    assert completed.status == "rejected"
    assert completed.results == []
    limit = 10 if origin == "api" else 8
    assert completed.reason == (
        f"too_many_billing_accounts: {found} billing accounts found for {len(crm_ids)} CRM "
        f"accounts, origin {origin} allows at most {limit}"
    )
    assert crm.calls() == 0  # nothing written, not even a CRM login
    assert billing.calls("query") == 1  # one lookup query for every CRM account of the request
    assert len(store.sessions) == 1


def test_exactly_the_ui_limit_of_billing_accounts_syncs(
    make_billing: MakeBilling, make_crm: MakeCrm, make_service: MakeService
) -> None:
    seed, ids = account_seed(8, crm_id=X, invoices=0)
    billing, crm = make_billing(seed), make_crm()
    service, _ = make_service(billing, crm)
    completed = _valid(service.handle(crm_request([X], origin="ui")))
    assert completed.status == "finished"
    assert [r.zuora_id for r in completed.results] == ids


def test_each_entity_syncs_its_own_accounts_of_the_same_crm_account(
    make_billing: MakeBilling, make_crm: MakeCrm, make_service: MakeService
) -> None:
    eu, eu_ids = account_seed(1, crm_id=X, name="EU customer")
    us, us_ids = account_seed(1, crm_id=X, start=2, name="US customer")
    us_y, us_y_ids = account_seed(1, crm_id=Y, start=3, name="US customer")
    default, default_ids = account_seed(1, crm_id=X, start=4, name="Default customer")
    billing = make_billing({**default, "entities": {"eu": eu, "us": merge(us, us_y)}})
    crm = make_crm(ENTITIES)
    service, _ = make_service(billing, crm)
    body = service.handle(
        crm_request([X, Y], entity_by_id={X: "eu", Y: "us"}), known_entities={"eu", "us"}
    )
    completed = _valid(body)
    assert completed.status == "finished", body
    assert [(r.crm_account_id, r.zuora_id) for r in completed.results] == [
        (X, eu_ids[0]),
        (X, us_ids[0]),
        (Y, us_y_ids[0]),
    ]
    customers = _customers(crm)
    assert set(customers) == {eu_ids[0], us_ids[0], us_y_ids[0]}  # not the default entity's
    assert customers[eu_ids[0]]["Name"] == "EU customer 1"
    assert customers[us_ids[0]]["Name"] == "US customer 2"
    assert set(billing.state.logins) == {"eu", "us"}
    assert default_ids[0] not in customers


def test_an_entity_without_its_crm_record_fails_its_accounts_only(
    make_billing: MakeBilling, make_crm: MakeCrm, make_service: MakeService
) -> None:
    eu, eu_ids = account_seed(1, crm_id=X)
    us, us_ids = account_seed(2, crm_id=X, start=2)
    billing = make_billing({"entities": {"eu": eu, "us": us}})
    crm = make_crm({"zqu__BillingEntity__c": [{"Name": "eu"}]})
    service, _ = make_service(billing, crm)
    completed = _valid(
        service.handle(
            crm_request([X, Y], entity_by_id={X: "eu", Y: "us"}), known_entities={"eu", "us"}
        )
    )
    assert completed.status == "finished_with_errors"
    by_id = {r.zuora_id: r for r in completed.results}
    assert by_id[eu_ids[0]].status == "synced"
    for zuora_id in us_ids:
        assert by_id[zuora_id].status == "failed"
        assert by_id[zuora_id].crm_account_id == X
        assert [e.code for e in by_id[zuora_id].errors] == ["billing_entity_missing"]
        assert "'us'" in by_id[zuora_id].errors[0].message
    assert set(_customers(crm)) == set(eu_ids)
    assert by_id[None].crm_account_id == Y  # Y has no account in either entity
    assert by_id[None].status == "skipped"


def test_an_entity_the_billing_login_refuses_fails_the_lookup_clearly(
    make_billing: MakeBilling, make_crm: MakeCrm, make_service: MakeService
) -> None:
    eu, eu_ids = account_seed(1, crm_id=X)
    billing = make_billing({"entities": {"eu": eu}}, entities={"eu"})
    crm = make_crm(ENTITIES)
    service, _ = make_service(billing, crm)
    completed = _valid(
        service.handle(
            crm_request([X, Y], entity_by_id={X: "eu", Y: "mars"}), known_entities={"eu", "mars"}
        )
    )
    assert completed.status == "finished_with_errors"
    rows = [(r.crm_account_id, r.zuora_id, r.status) for r in completed.results]
    assert rows == [(X, eu_ids[0], "synced"), (X, None, "failed"), (Y, None, "failed")]
    failed = completed.results[1].errors[0]
    assert failed.code == "login_failed"
    assert failed.message.startswith("cannot look up the billing accounts in entity 'mars'")


def test_a_billing_account_already_syncing_is_skipped_whatever_the_request_kind(
    make_billing: MakeBilling, make_crm: MakeCrm, make_service: MakeService
) -> None:
    seed, ids = account_seed(2, crm_id=X)
    locks = InMemorySyncLocks()
    billing, crm = make_billing(seed), make_crm()
    service, _ = make_service(billing, crm, locks=locks)
    assert locks.try_acquire(f"billing_account:{ids[0]}", ttl_seconds=60)
    completed = _valid(service.handle(crm_request([X])))
    assert [r.status for r in completed.results] == ["skipped", "synced"]
    assert completed.results[0].errors[0].code == "already_syncing"

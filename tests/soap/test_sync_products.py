"""The sync engine end to end against both sandboxes over HTTP (project WSDLs): products,
their rate plans, charges and tiers, and the dates Salesforce cannot hold."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from soapkit import product_seed, request

from entity_sync.handlers.sync.memory import InMemorySyncStore
from entity_sync.handlers.sync.service import SyncService
from entity_sync.schemas.outputs import SyncCompleted
from entity_sync_sandbox import BillingSandboxHandle, CrmSandboxHandle

pytestmark = pytest.mark.soap

MakeBilling = Callable[..., BillingSandboxHandle]
MakeCrm = Callable[..., CrmSandboxHandle]
MakeService = Callable[..., tuple[SyncService, InMemorySyncStore]]


def _valid(body: dict[str, Any]) -> SyncCompleted:
    return SyncCompleted.model_validate(body)


def test_product_sync(
    make_billing: MakeBilling, make_crm: MakeCrm, make_service: MakeService
) -> None:
    seed, product_id = product_seed()
    billing, crm = make_billing(seed), make_crm()
    service, _ = make_service(billing, crm)
    completed = _valid(service.handle(request([product_id], object_type="product")))
    assert completed.status == "finished"
    assert completed.results[0].counts == {
        "Product2": 1,
        "zqu__ProductRatePlan__c": 2,
        "zqu__ProductRatePlanCharge__c": 4,
        "zqu__ProductRatePlanChargeTier__c": 8,
    }
    product = crm.state.find("Product2", "zqu__ZuoraId__c", product_id)
    assert product is not None
    assert product["ProductCode"] == "SKU-1"
    plans = crm.state.all("zqu__ProductRatePlan__c")
    assert {p["zqu__Product__c"] for p in plans} == {product["Id"]}


def test_product_with_a_date_out_of_range_fails_with_its_children(
    make_billing: MakeBilling, make_crm: MakeCrm, make_service: MakeService
) -> None:
    seed, product_id = product_seed(start_date="1650-01-01")
    billing, crm = make_billing(seed), make_crm()
    service, _ = make_service(billing, crm)
    completed = _valid(service.handle(request([product_id], object_type="product")))
    (result,) = completed.results
    assert completed.status == "failed"
    assert result.errors[0].code == "invalid_date"
    assert result.errors[0].zuora_id == product_id
    assert {e.code for e in result.errors[1:]} == {"parent_failed"}
    assert crm.state.all("Product2") == []


def test_one_tier_with_a_bad_date_fails_alone(
    make_billing: MakeBilling, make_crm: MakeCrm, make_service: MakeService
) -> None:
    seed, product_id = product_seed()
    seed["ProductRatePlan"][0]["EffectiveEndDate"] = "4001-01-01"
    billing, crm = make_billing(seed), make_crm()
    service, _ = make_service(billing, crm)
    completed = _valid(service.handle(request([product_id], object_type="product")))
    (result,) = completed.results
    assert result.status == "synced"
    assert completed.status == "finished_with_errors"
    assert result.counts["zqu__ProductRatePlan__c"] == 1
    assert result.counts["zqu__ProductRatePlanCharge__c"] == 2  # the other plan's charges
    assert result.errors[0].code == "invalid_date"

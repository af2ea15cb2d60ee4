"""Contract tests: the clients built from the VENDOR WSDLs (read from
ENTITY_SYNC_VENDOR_WSDL_DIR, never copied into the project) run full syncs through the
sandboxes, so the sandboxes and the project's requests agree with the real contracts."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from soapkit import (
    VENDOR_FILES,
    account_seed,
    billing_settings,
    crm_request,
    merge,
    product_seed,
    request,
)

from entity_sync.handlers.soap.billing import BillingClient
from entity_sync.handlers.soap.errors import SoapPermanentError
from entity_sync.handlers.sync.memory import InMemorySyncStore
from entity_sync.handlers.sync.service import SyncService
from entity_sync.schemas.outputs import SyncCompleted
from entity_sync_sandbox import BillingSandboxHandle, CrmSandboxHandle

pytestmark = pytest.mark.soap

MakeBilling = Callable[..., BillingSandboxHandle]
MakeCrm = Callable[..., CrmSandboxHandle]
MakeService = Callable[..., tuple[SyncService, InMemorySyncStore]]


def _vendor(directory: Path) -> tuple[dict[str, Path], dict[str, Path]]:
    billing_wsdl, crm_wsdl = (directory / name for name in VENDOR_FILES)
    return {"wsdl": billing_wsdl}, {"wsdl": crm_wsdl}


def test_vendor_wsdls_full_account_and_product_sync(
    vendor_wsdl_dir: Path, make_billing: MakeBilling, make_crm: MakeCrm, make_service: MakeService
) -> None:
    accounts, account_ids = account_seed(2, invoices=2101)
    products, product_id = product_seed()
    billing, crm = make_billing(merge(accounts, products)), make_crm()
    billing_options, crm_options = _vendor(vendor_wsdl_dir)
    service, _ = make_service(
        billing, crm, billing_options=billing_options, crm_options=crm_options
    )

    billing.expire_sessions_after(5)  # the vendor contract's session fault, mid-sync
    completed = SyncCompleted.model_validate(service.handle(request(account_ids)))
    assert completed.status == "finished"
    for result in completed.results:
        assert result.counts["Zuora__ZInvoice__c"] == 2101
        assert result.counts["Zuora__SubscriptionProductCharge__c"] == 4
    assert billing.calls("queryMore") >= 2
    assert max(crm.state.upsert_sizes) == 200
    customer = crm.state.find("Zuora__CustomerAccount__c", "Zuora__External_Id__c", account_ids[0])
    assert customer is not None
    assert customer["Zuora__Balance__c"] == "125.50"
    assert customer["Zuora__LastInvoiceDate__c"] == "2026-10-01"

    completed = SyncCompleted.model_validate(
        service.handle(request([product_id], object_type="product"))
    )
    assert completed.status == "finished"
    assert completed.results[0].counts == {
        "Product2": 1,
        "zqu__ProductRatePlan__c": 2,
        "zqu__ProductRatePlanCharge__c": 4,
        "zqu__ProductRatePlanChargeTier__c": 8,
    }
    tier = crm.state.all("zqu__ProductRatePlanChargeTier__c")[0]
    assert tier["zqu__Price__c"] == "9.99"


def test_vendor_crm_wsdl_keeps_per_row_errors(
    vendor_wsdl_dir: Path, make_billing: MakeBilling, make_crm: MakeCrm, make_service: MakeService
) -> None:
    seed, (account_id,) = account_seed(invoices=3)
    billing, crm = make_billing(seed), make_crm()
    crm.lock_rows([seed["Invoice"][1]["Id"]], times=1000)
    billing_options, crm_options = _vendor(vendor_wsdl_dir)
    service, _ = make_service(
        billing, crm, billing_options=billing_options, crm_options={**crm_options, "max_retries": 1}
    )
    completed = SyncCompleted.model_validate(service.handle(request([account_id])))
    assert completed.status == "finished_with_errors"
    assert [e.code for e in completed.results[0].errors] == ["UNABLE_TO_LOCK_ROW"]


def test_vendor_billing_wsdl_cannot_name_an_entity(
    vendor_wsdl_dir: Path, make_billing: MakeBilling, make_crm: MakeCrm, make_service: MakeService
) -> None:
    seed, ids = account_seed()
    billing = make_billing(seed)
    crm = make_crm({"zqu__BillingEntity__c": [{"Name": "eu"}]})
    billing_options, crm_options = _vendor(vendor_wsdl_dir)
    with pytest.raises(SoapPermanentError) as caught:
        BillingClient(billing_settings(billing.url, **billing_options), entity="eu")
    assert caught.value.code == "entity_login_unsupported"
    service, _ = make_service(
        billing, crm, billing_options=billing_options, crm_options=crm_options
    )
    completed = SyncCompleted.model_validate(
        service.handle(request(ids, entity_by_id={ids[0]: "eu"}), known_entities={"eu"})
    )
    assert completed.status == "failed"
    assert completed.results[0].errors[0].code == "entity_login_unsupported"
    assert billing.calls() == 0


def test_vendor_wsdls_sync_every_billing_account_of_a_crm_account(
    vendor_wsdl_dir: Path, make_billing: MakeBilling, make_crm: MakeCrm, make_service: MakeService
) -> None:
    crm_account = "001Dn00000A1b2cIAB"
    mine, mine_ids = account_seed(2, crm_id=crm_account[:15])
    other, _ = account_seed(1, start=3)
    billing, crm = make_billing(merge(mine, other)), make_crm()
    billing_options, crm_options = _vendor(vendor_wsdl_dir)
    service, _ = make_service(
        billing, crm, billing_options=billing_options, crm_options=crm_options
    )
    completed = SyncCompleted.model_validate(
        service.handle(crm_request([crm_account, "001Dn00000B7xYzIAJ"]))
    )
    assert completed.status == "finished_with_errors"
    rows = [(r.crm_account_id, r.zuora_id, r.status) for r in completed.results]
    assert rows == [
        (crm_account, mine_ids[0], "synced"),
        (crm_account, mine_ids[1], "synced"),
        ("001Dn00000B7xYzIAJ", None, "skipped"),
    ]
    assert completed.results[0].counts["Zuora__SubscriptionProductCharge__c"] == 4
    assert completed.results[2].errors[0].code == "no_billing_accounts"


def test_vendor_billing_wsdl_cannot_look_up_crm_accounts_in_an_entity(
    vendor_wsdl_dir: Path, make_billing: MakeBilling, make_crm: MakeCrm, make_service: MakeService
) -> None:
    crm_account = "001Dn00000A1b2cIAB"
    seed, _ = account_seed(1, crm_id=crm_account)
    billing = make_billing({"entities": {"eu": seed}})
    crm = make_crm({"zqu__BillingEntity__c": [{"Name": "eu"}]})
    billing_options, crm_options = _vendor(vendor_wsdl_dir)
    service, _ = make_service(
        billing, crm, billing_options=billing_options, crm_options=crm_options
    )
    completed = SyncCompleted.model_validate(
        service.handle(
            crm_request([crm_account], entity_by_id={crm_account: "eu"}), known_entities={"eu"}
        )
    )
    assert completed.status == "failed"
    (result,) = completed.results
    assert (result.crm_account_id, result.zuora_id) == (crm_account, None)
    assert result.errors[0].code == "entity_login_unsupported"
    assert billing.calls() + crm.calls() == 0

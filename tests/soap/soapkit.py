"""Seeds, settings and sync requests for the SOAP tests."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from pydantic import SecretStr

from entity_sync.handlers.soap.config import BillingSettings, CrmSettings
from entity_sync.schemas.inputs import SyncRequest

VENDOR_FILES = ("zuora.a.79.0.wsdl", "salesforce-partner.v58.wsdl")  # billing, CRM
FAST = {"backoff_seconds": 0.001, "backoff_max_seconds": 0.01, "read_timeout": 10.0}


def zid(kind: int, n: int) -> str:
    """A 32-hex billing id; `kind` keeps object types apart."""
    return f"{kind:02x}{n:030x}"


Seed = dict[str, list[dict[str, Any]]]
"""Rows by billing object name, as the sandbox takes them."""

SEED_OBJECTS = (
    "Account", "Contact", "PaymentMethod", "Subscription", "RatePlan", "RatePlanCharge",
    "Invoice", "Payment",
)  # fmt: skip


def account_seed(
    n_accounts: int = 1,
    *,
    invoices: int = 3,
    crm_id: bool | str = True,
    start: int = 1,
    name: str = "Customer",
) -> tuple[Seed, list[str]]:
    """Accounts with their related objects. `crm_id`: True gives each its own CRM account, a
    string puts every account under that CRM account, False leaves CrmId out.

    Account `a` gets two contacts (bill-to, sold-to), a payment method, two subscriptions of
    one rate plan with two charges each, `invoices` invoices and a payment (of its first
    invoice, if it has one). Each object type has its own id `kind` (see `zid`)."""
    seed: Seed = {k: [] for k in SEED_OBJECTS}
    ids = []
    for a in range(start, start + n_accounts):
        account_id = zid(0x0A, a)
        ids.append(account_id)
        bill_to, sold_to = zid(0x0C, a * 2), zid(0x0C, a * 2 + 1)
        seed["Account"].append(_account(a, account_id, bill_to, sold_to, crm_id, name))
        seed["Contact"].extend(_contacts(a, account_id, bill_to, sold_to))
        seed["PaymentMethod"].append(_payment_method(a, account_id))
        _add_subscriptions(seed, a, account_id)
        seed["Invoice"].extend(_invoices(a, account_id, invoices))
        seed["Payment"].append(_payment(a, account_id, invoices))
    return seed, ids


def _account(
    a: int, account_id: str, bill_to: str, sold_to: str, crm_id: bool | str, name: str
) -> dict[str, Any]:
    return {
        "Id": account_id, "AccountNumber": f"A-{a:05d}", "Name": f"{name} {a}",
        "Balance": "125.50", "Currency": "EUR", "Status": "Active",
        "BillToId": bill_to, "SoldToId": sold_to, "LastInvoiceDate": "2026-10-01",
        **({"CrmId": crm_id if isinstance(crm_id, str) else f"001{a:012d}AAA"}
           if crm_id else {}),
    }  # fmt: skip


def _contacts(a: int, account_id: str, bill_to: str, sold_to: str) -> list[dict[str, Any]]:
    return [
        {
            "Id": contact_id, "AccountId": account_id, "FirstName": first,
            "LastName": f"Payer{a}", "WorkEmail": f"{first.lower()}{a}@example.com",
            "City": "Berlin", "Country": "Germany",
        }
        for contact_id, first in ((bill_to, "Bill"), (sold_to, "Sold"))
    ]  # fmt: skip


def _payment_method(a: int, account_id: str) -> dict[str, Any]:
    return {"Id": zid(0x0D, a), "AccountId": account_id, "Type": "CreditCard",
            "CreditCardMaskNumber": "************1111", "CreditCardType": "Visa"}  # fmt: skip


def _add_subscriptions(seed: Seed, a: int, account_id: str) -> None:
    """Two subscriptions, each with one rate plan of two charges."""
    for s in range(2):
        sub_id = zid(0x05, a * 10 + s)
        seed["Subscription"].append(
            {"Id": sub_id, "AccountId": account_id, "Name": f"S-{a}-{s}", "Status": "Active",
             "AutoRenew": True, "SubscriptionStartDate": "2026-01-01", "TermType": "TERMED"}
        )  # fmt: skip
        plan_id = zid(0x06, a * 10 + s)
        seed["RatePlan"].append(
            {"Id": plan_id, "SubscriptionId": sub_id, "Name": "Gold",
             "ProductRatePlanId": zid(0x1B, 1)}
        )  # fmt: skip
        for c in range(2):
            seed["RatePlanCharge"].append(
                {"Id": zid(0x07, a * 100 + s * 10 + c), "RatePlanId": plan_id,
                 "Name": f"Fee {c}", "ChargeNumber": f"C-{a}-{s}-{c}",
                 "ChargeModel": "Flat Fee Pricing",
                 "ChargeType": "Recurring", "Price": "10.00", "Quantity": "1",
                 "EffectiveStartDate": "2026-01-01"}
            )  # fmt: skip


def _invoices(a: int, account_id: str, invoices: int) -> list[dict[str, Any]]:
    return [
        {"Id": zid(0x08, a * 100_000 + i), "AccountId": account_id,
         "InvoiceNumber": f"INV-{a}-{i:05d}", "Amount": "20.00", "Balance": "0",
         "InvoiceDate": "2026-02-01", "DueDate": "2026-03-01", "Status": "Posted"}
        for i in range(invoices)
    ]  # fmt: skip


def _payment(a: int, account_id: str, invoices: int) -> dict[str, Any]:
    """Pays the account's first invoice, if it has any."""
    return {"Id": zid(0x09, a), "AccountId": account_id, "Amount": "20.00",
            "EffectiveDate": "2026-02-10", "PaymentNumber": f"P-{a}", "Status": "Processed",
            "Type": "Electronic",
            **({"InvoiceId": zid(0x08, a * 100_000)} if invoices else {})}  # fmt: skip


def product_seed(
    product: int = 1, *, start_date: str = "2026-01-01"
) -> tuple[dict[str, list[dict[str, Any]]], str]:
    product_id = zid(0x1A, product)
    seed: dict[str, list[dict[str, Any]]] = {
        "Product": [
            {"Id": product_id, "Name": f"Product {product}", "SKU": f"SKU-{product}",
             "EffectiveStartDate": start_date, "EffectiveEndDate": "2099-12-31"}
        ],
        "ProductRatePlan": [],
        "ProductRatePlanCharge": [],
        "ProductRatePlanChargeTier": [],
    }  # fmt: skip
    for p in range(2):
        plan_id = zid(0x1B, product * 10 + p)
        seed["ProductRatePlan"].append(
            {"Id": plan_id, "ProductId": product_id, "Name": f"Plan {p}",
             "EffectiveStartDate": "2026-01-01", "EffectiveEndDate": "2099-12-31"}
        )  # fmt: skip
        for c in range(2):
            charge_id = zid(0x1C, product * 100 + p * 10 + c)
            seed["ProductRatePlanCharge"].append(
                {"Id": charge_id, "ProductRatePlanId": plan_id, "Name": f"Charge {c}",
                 "ChargeType": "Recurring", "ChargeModel": "Tiered Pricing",
                 "BillingTiming": "In Advance", "UOM": "Each"}
            )  # fmt: skip
            for t in range(2):
                seed["ProductRatePlanChargeTier"].append(
                    {"Id": zid(0x1D, product * 1000 + p * 100 + c * 10 + t),
                     "ProductRatePlanChargeId": charge_id, "Tier": t + 1, "Currency": "EUR",
                     "Price": "9.99", "StartingUnit": str(t * 10), "PriceFormat": "Per Unit"}
                )  # fmt: skip
    return seed, product_id


def merge(*seeds: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for seed in seeds:
        for name, rows in seed.items():
            out.setdefault(name, []).extend(rows)
    return out


def billing_settings(url: str, **overrides: Any) -> BillingSettings:
    values: dict[str, Any] = {
        "endpoint": url, "username": "sandbox", "password": SecretStr("sandbox"), **FAST,
    }  # fmt: skip
    values.update(overrides)
    return BillingSettings(**values)


def crm_settings(url: str, **overrides: Any) -> CrmSettings:
    values: dict[str, Any] = {
        "endpoint": url, "username": "sandbox", "password": SecretStr("sandbox"), **FAST,
    }  # fmt: skip
    values.update(overrides)
    return CrmSettings(**values)


def request(
    ids: list[str],
    *,
    object_type: str = "billing_account",
    origin: str = "api",
    entity_by_id: dict[str, str] | None = None,
) -> SyncRequest:
    return SyncRequest.model_validate(
        {
            "request_id": str(uuid.uuid4()),
            "object_type": object_type,
            "zuora_ids": ids,
            "entity_by_id": entity_by_id,
            "origin": origin,
            "requested_by": "tests@example.com",
            "requested_at": dt.datetime.now(dt.UTC).isoformat(),
        }
    )


def crm_request(
    crm_account_ids: list[str],
    *,
    origin: str = "api",
    entity_by_id: dict[str, str] | None = None,
) -> SyncRequest:
    return SyncRequest.model_validate(
        {
            "request_id": str(uuid.uuid4()),
            "object_type": "crm_account",
            "crm_account_ids": crm_account_ids,
            "entity_by_id": entity_by_id,
            "origin": origin,
            "requested_by": "tests@example.com",
            "requested_at": dt.datetime.now(dt.UTC).isoformat(),
        }
    )

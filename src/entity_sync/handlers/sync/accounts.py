"""Sync of one billing account and its related objects, parents before children."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from entity_sync.handlers.errors import PermanentError
from entity_sync.handlers.sync.mapping import ACCOUNT_EXTERNAL_ID, map_customer_account, map_record
from entity_sync.handlers.sync.ports import BillingApi, CrmApi
from entity_sync.handlers.sync.reader import ids_of, read_by
from entity_sync.handlers.sync.writer import Outcome, Parents, Prepared, Writer, linked


class AccountNotSyncable(PermanentError):
    """Not found, or no CrmId: fails with a clear code and is not retried."""


def sync_account(billing: BillingApi, crm: CrmApi, account_id: str) -> tuple[bool, Outcome]:
    """(whether the customer account itself reached the CRM, counts and errors)."""
    found = read_by(billing, "Account", "Id", [account_id])
    if not found:
        raise AccountNotSyncable(f"billing account {account_id} not found", reason="not_found")
    account = found[0]
    if not account.get("CrmId"):
        raise AccountNotSyncable(
            f"billing account {account_id} has no CrmId (CRM account id), so it cannot sync",
            reason="missing_crm_id",
        )
    contact_ids = ids_of([account], "BillToId") + ids_of([account], "SoldToId")
    contacts = {str(c["Id"]): c for c in read_by(billing, "Contact", "Id", contact_ids)}
    payment_methods = read_by(billing, "PaymentMethod", "AccountId", [account_id])
    subscriptions = read_by(billing, "Subscription", "AccountId", [account_id])
    rate_plans = read_by(billing, "RatePlan", "SubscriptionId", ids_of(subscriptions))
    charges = read_by(billing, "RatePlanCharge", "RatePlanId", ids_of(rate_plans))
    invoices = read_by(billing, "Invoice", "AccountId", [account_id])
    payments = read_by(billing, "Payment", "AccountId", [account_id])

    writer = Writer(crm, ACCOUNT_EXTERNAL_ID)
    common = {"Zuora__Account__c": str(account["CrmId"])}

    def fields(links: dict[str, str]) -> dict[str, str]:
        bill_to = contacts.get(str(account.get("BillToId")))
        sold_to = contacts.get(str(account.get("SoldToId")))
        return {**map_customer_account(account, bill_to, sold_to), **links}

    customer = writer.upsert("Zuora__CustomerAccount__c", [linked(account_id, fields, {})])
    to_account: Parents = {"Zuora__BillingAccount__c": ("account", customer, account_id)}

    def child(obj: str, records: list[dict[str, Any]], parents: Any) -> list[Prepared]:
        return [_child(obj, r, common, parents(r)) for r in records]

    writer.upsert(
        "Zuora__PaymentMethod__c",
        child("Zuora__PaymentMethod__c", payment_methods, lambda r: to_account),
    )
    subs = writer.upsert(
        "Zuora__Subscription__c",
        child(
            "Zuora__Subscription__c",
            subscriptions,
            lambda r: {"Zuora__CustomerAccount__c": ("account", customer, account_id)},
        ),
    )
    plans = writer.upsert(
        "Zuora__SubscriptionRatePlan__c",
        child(
            "Zuora__SubscriptionRatePlan__c",
            rate_plans,
            lambda r: {"Zuora__Subscription__c": ("subscription", subs, _ref(r, "SubscriptionId"))},
        ),
    )
    plan_subscription = {str(p["Id"]): _ref(p, "SubscriptionId") for p in rate_plans}
    writer.upsert(
        "Zuora__SubscriptionProductCharge__c",
        child(
            "Zuora__SubscriptionProductCharge__c",
            charges,
            lambda r: {
                "Zuora__SubscriptionRatePlan__c": ("rate plan", plans, _ref(r, "RatePlanId")),
                "Zuora__Subscription__c": (
                    "subscription",
                    subs,
                    plan_subscription.get(str(r.get("RatePlanId"))),
                ),
            },
        ),
    )
    invoice_ids = writer.upsert(
        "Zuora__ZInvoice__c", child("Zuora__ZInvoice__c", invoices, lambda r: to_account)
    )
    own_invoices = set(ids_of(invoices))

    def payment_parents(r: dict[str, Any]) -> Parents:
        invoice = _ref(r, "InvoiceId")
        if invoice is None or invoice not in own_invoices:
            return to_account  # an invoice of another account is not linked
        return {**to_account, "Zuora__Invoice__c": ("invoice", invoice_ids, invoice)}

    writer.upsert("Zuora__Payment__c", child("Zuora__Payment__c", payments, payment_parents))
    return account_id in customer, writer.outcome


def _child(
    obj: str, record: dict[str, Any], common: Mapping[str, str], parents: Parents
) -> Prepared:
    return linked(
        str(record["Id"]),
        lambda links: map_record(
            obj, record, external_id_field=ACCOUNT_EXTERNAL_ID, links={**common, **links}
        ),
        parents,
    )


def _ref(record: Mapping[str, Any], field: str) -> str | None:
    value = record.get(field)
    return str(value) if value else None

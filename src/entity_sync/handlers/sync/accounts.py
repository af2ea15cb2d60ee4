"""Sync of one billing account and its related objects, parents before children."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from entity_sync.handlers.errors import PermanentError
from entity_sync.handlers.sync.mapping import ACCOUNT_EXTERNAL_ID, map_customer_account, map_record
from entity_sync.handlers.sync.ports import BillingApi, CrmApi
from entity_sync.handlers.sync.reader import ids_of, read_by
from entity_sync.handlers.sync.writer import Outcome, Parents, Prepared, Writer, linked

Record = dict[str, Any]


class AccountNotSyncable(PermanentError):
    """Not found, or no CrmId: fails with a clear code and is not retried."""


def sync_account(billing: BillingApi, crm: CrmApi, account_id: str) -> tuple[bool, Outcome]:
    """(whether the customer account itself reached the CRM, counts and errors)."""
    return _AccountWrite(crm, _read(billing, account_id)).run()


@dataclass(frozen=True)
class _Account:
    """A billing account and everything that syncs with it, as read from the billing system."""

    id: str
    record: Record
    contacts: dict[str, Record]
    payment_methods: list[Record]
    subscriptions: list[Record]
    rate_plans: list[Record]
    charges: list[Record]
    invoices: list[Record]
    payments: list[Record]


def _read(billing: BillingApi, account_id: str) -> _Account:
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
    return _Account(
        id=account_id,
        record=account,
        contacts=contacts,
        payment_methods=payment_methods,
        subscriptions=subscriptions,
        rate_plans=rate_plans,
        charges=read_by(billing, "RatePlanCharge", "RatePlanId", ids_of(rate_plans)),
        invoices=read_by(billing, "Invoice", "AccountId", [account_id]),
        payments=read_by(billing, "Payment", "AccountId", [account_id]),
    )


class _AccountWrite:
    """The upserts of one account, in order: each child links to the CRM ids its parents got."""

    def __init__(self, crm: CrmApi, account: _Account) -> None:
        self.account = account
        self.writer = Writer(crm, ACCOUNT_EXTERNAL_ID)
        self.common = {"Zuora__Account__c": str(account.record["CrmId"])}

    def run(self) -> tuple[bool, Outcome]:
        a = self.account
        customer = self.writer.upsert(
            "Zuora__CustomerAccount__c", [linked(a.id, self._customer_fields, {})]
        )
        to_account: Parents = {"Zuora__BillingAccount__c": ("account", customer, a.id)}
        self._upsert("Zuora__PaymentMethod__c", a.payment_methods, lambda r: to_account)
        self._subscriptions(customer)
        invoice_ids = self._upsert("Zuora__ZInvoice__c", a.invoices, lambda r: to_account)
        own_invoices = set(ids_of(a.invoices))

        def payment_parents(r: Record) -> Parents:
            invoice = _ref(r, "InvoiceId")
            if invoice is None or invoice not in own_invoices:
                return to_account  # an invoice of another account is not linked
            return {**to_account, "Zuora__Invoice__c": ("invoice", invoice_ids, invoice)}

        self._upsert("Zuora__Payment__c", a.payments, payment_parents)
        return a.id in customer, self.writer.outcome

    def _customer_fields(self, links: dict[str, str]) -> dict[str, str]:
        a = self.account
        bill_to = a.contacts.get(str(a.record.get("BillToId")))
        sold_to = a.contacts.get(str(a.record.get("SoldToId")))
        return {**map_customer_account(a.record, bill_to, sold_to), **links}

    def _subscriptions(self, customer: dict[str, str]) -> None:
        """Subscriptions, their rate plans, then the charges (linked to both)."""
        a = self.account
        to_customer: Parents = {"Zuora__CustomerAccount__c": ("account", customer, a.id)}
        subs = self._upsert("Zuora__Subscription__c", a.subscriptions, lambda r: to_customer)
        plans = self._upsert(
            "Zuora__SubscriptionRatePlan__c",
            a.rate_plans,
            lambda r: {"Zuora__Subscription__c": ("subscription", subs, _ref(r, "SubscriptionId"))},
        )
        plan_subscription = {str(p["Id"]): _ref(p, "SubscriptionId") for p in a.rate_plans}
        self._upsert(
            "Zuora__SubscriptionProductCharge__c",
            a.charges,
            lambda r: {
                "Zuora__SubscriptionRatePlan__c": ("rate plan", plans, _ref(r, "RatePlanId")),
                "Zuora__Subscription__c": (
                    "subscription",
                    subs,
                    plan_subscription.get(str(r.get("RatePlanId"))),
                ),
            },
        )

    def _upsert(
        self, obj: str, records: list[Record], parents: Callable[[Record], Parents]
    ) -> dict[str, str]:
        return self.writer.upsert(obj, [_child(obj, r, self.common, parents(r)) for r in records])


def _child(obj: str, record: Record, common: Mapping[str, str], parents: Parents) -> Prepared:
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

"""Field mapping from billing objects (Zuora field names) to CRM objects (Zuora's CRM package
field names). Values become CRM text; dates outside 1700-01-01..4000-12-31 fail the record."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

ACCOUNT_EXTERNAL_ID = "Zuora__External_Id__c"
PRODUCT_EXTERNAL_ID = "zqu__ZuoraId__c"
DATE_MIN = dt.date(1700, 1, 1)
DATE_MAX = dt.date(4000, 12, 31)
_DATE_TEXT = re.compile(r"^(\d{4,})-(\d{2})-(\d{2})")

# What to read from billing: object -> fields (a subset the vendor WSDL also declares).
READ_FIELDS: dict[str, tuple[str, ...]] = {
    "Account": (
        "Id", "AccountNumber", "Balance", "BillToId", "CrmId", "Currency", "DefaultPaymentMethodId",
        "LastInvoiceDate", "Name", "SoldToId", "Status",
    ),
    "Contact": (
        "Id", "AccountId", "Address1", "City", "Country", "FirstName", "LastName", "PostalCode",
        "State", "WorkEmail", "WorkPhone",
    ),
    "PaymentMethod": (
        "Id", "AccountId", "CreditCardMaskNumber", "CreditCardType", "PaymentMethodStatus", "Type",
    ),
    "Subscription": (
        "Id", "AccountId", "AutoRenew", "Name", "Status", "SubscriptionEndDate",
        "SubscriptionStartDate", "TermEndDate", "TermType",
    ),
    "RatePlan": ("Id", "Name", "ProductRatePlanId", "SubscriptionId"),
    "RatePlanCharge": (
        "Id", "ChargeModel", "ChargeNumber", "ChargeType", "EffectiveEndDate", "EffectiveStartDate",
        "Name", "Price", "Quantity", "RatePlanId",
    ),
    "Invoice": (
        "Id", "AccountId", "Amount", "Balance", "DueDate", "InvoiceDate", "InvoiceNumber", "Status",
    ),
    "Payment": (
        "Id", "AccountId", "Amount", "EffectiveDate", "InvoiceId", "PaymentNumber", "Status",
        "Type",
    ),
    "Product": ("Id", "Description", "EffectiveEndDate", "EffectiveStartDate", "Name", "SKU"),
    "ProductRatePlan": (
        "Id", "Description", "EffectiveEndDate", "EffectiveStartDate", "Name", "ProductId",
    ),
    "ProductRatePlanCharge": (
        "Id", "BillingTiming", "ChargeModel", "ChargeType", "Description", "Name",
        "ProductRatePlanId", "UOM",
    ),
    "ProductRatePlanChargeTier": (
        "Id", "Currency", "EndingUnit", "Price", "PriceFormat", "ProductRatePlanChargeId",
        "StartingUnit", "Tier",
    ),
}  # fmt: skip

# CRM field <- billing field, per CRM object. Parent links are added by the sync itself.
CRM_FIELDS: dict[str, dict[str, str]] = {
    "Zuora__CustomerAccount__c": {
        "Name": "Name",
        "Zuora__AccountNumber__c": "AccountNumber",
        "Zuora__Account__c": "CrmId",
        "Zuora__Balance__c": "Balance",
        "Zuora__Currency__c": "Currency",
        "Zuora__Status__c": "Status",
        "Zuora__LastInvoiceDate__c": "LastInvoiceDate",
        "Zuora__Zuora_Id__c": "Id",
    },
    "Zuora__PaymentMethod__c": {
        "Name": "Id",
        "Zuora__Type__c": "Type",
        "Zuora__CreditCardMaskNumber__c": "CreditCardMaskNumber",
        "Zuora__CreditCardType__c": "CreditCardType",
        "Zuora__PaymentMethodStatus__c": "PaymentMethodStatus",
    },
    "Zuora__Subscription__c": {
        "Name": "Name",
        "Zuora__Status__c": "Status",
        "Zuora__AutoRenew__c": "AutoRenew",
        "Zuora__SubscriptionStartDate__c": "SubscriptionStartDate",
        "Zuora__SubscriptionEndDate__c": "SubscriptionEndDate",
        "Zuora__TermEndDate__c": "TermEndDate",
        "Zuora__TermSettingType__c": "TermType",
        "Zuora__Zuora_Id__c": "Id",
    },
    "Zuora__SubscriptionRatePlan__c": {
        "Name": "Name",
        "Zuora__OriginalProductRatePlanId__c": "ProductRatePlanId",
    },
    "Zuora__SubscriptionProductCharge__c": {
        "Name": "Name",
        "Zuora__ChargeNumber__c": "ChargeNumber",
        "Zuora__Model__c": "ChargeModel",
        "Zuora__Type__c": "ChargeType",
        "Zuora__Price__c": "Price",
        "Zuora__Quantity__c": "Quantity",
        "Zuora__EffectiveStartDate__c": "EffectiveStartDate",
        "Zuora__EffectiveEndDate__c": "EffectiveEndDate",
        "Zuora__Zuora_Id__c": "Id",
    },
    "Zuora__ZInvoice__c": {
        "Name": "InvoiceNumber",
        "Zuora__InvoiceDate__c": "InvoiceDate",
        "Zuora__DueDate__c": "DueDate",
        "Zuora__TotalAmount__c": "Amount",
        "Zuora__Balance2__c": "Balance",
        "Zuora__Status__c": "Status",
        "Zuora__Zuora_Id__c": "Id",
    },
    "Zuora__Payment__c": {
        "Name": "PaymentNumber",
        "Zuora__Amount__c": "Amount",
        "Zuora__EffectiveDate__c": "EffectiveDate",
        "Zuora__Status__c": "Status",
        "Zuora__Type__c": "Type",
    },
    "Product2": {
        "Name": "Name",
        "ProductCode": "SKU",
        "Description": "Description",
        "zqu__SKU__c": "SKU",
        "zqu__EffectiveStartDate__c": "EffectiveStartDate",
        "zqu__EffectiveEndDate__c": "EffectiveEndDate",
    },
    "zqu__ProductRatePlan__c": {
        "Name": "Name",
        "zqu__Description__c": "Description",
        "zqu__EffectiveStartDate__c": "EffectiveStartDate",
        "zqu__EffectiveEndDate__c": "EffectiveEndDate",
    },
    "zqu__ProductRatePlanCharge__c": {
        "Name": "Name",
        "zqu__Type__c": "ChargeType",
        "zqu__Model__c": "ChargeModel",
        "zqu__BillingTiming__c": "BillingTiming",
        "zqu__Description__c": "Description",
        "zqu__UOM__c": "UOM",
    },
    "zqu__ProductRatePlanChargeTier__c": {
        "Name": "Tier",
        "zqu__Tier__c": "Tier",
        "zqu__Currency__c": "Currency",
        "zqu__Price__c": "Price",
        "zqu__PriceFormat__c": "PriceFormat",
        "zqu__StartingUnit__c": "StartingUnit",
        "zqu__EndingUnit__c": "EndingUnit",
    },
}

# Bill-to and sold-to contacts are folded into the customer account, as the CRM package does.
CONTACT_FIELDS = {
    "Name": None,  # "First Last"
    "WorkEmail": "WorkEmail",
    "WorkPhone": "WorkPhone",
    "Address1": "Address1",
    "City": "City",
    "State": "State",
    "PostalCode": "PostalCode",
    "Country": "Country",
}


class MappingError(Exception):
    """One record cannot be mapped; it fails alone with this code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def crm_value(value: Any, *, field: str = "value") -> str:
    """A billing value as CRM text; dates outside the CRM's range raise MappingError."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        _check_date(value.date(), field, value.isoformat())
        return value.isoformat()
    if isinstance(value, dt.date):
        _check_date(value, field, value.isoformat())
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value, "f")
    text = str(value)
    match = _DATE_TEXT.match(text)
    if match:
        year, month, day = (int(g) for g in match.groups())
        try:
            parsed = dt.date(year, month, day)
        except ValueError:
            raise MappingError("invalid_date", f"{field} {text!r} is not a date") from None
        _check_date(parsed, field, text)
    return text


def map_record(
    crm_object: str,
    source: Mapping[str, Any],
    *,
    external_id_field: str,
    links: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The CRM fields of one billing record, keyed by its billing id, plus parent links."""
    fields: dict[str, str] = {external_id_field: str(source["Id"])}
    for crm_field, billing_field in CRM_FIELDS[crm_object].items():
        value = source.get(billing_field)
        if value is not None:
            fields[crm_field] = crm_value(value, field=billing_field)
    fields.update(links or {})
    return fields


def map_customer_account(
    account: Mapping[str, Any],
    bill_to: Mapping[str, Any] | None,
    sold_to: Mapping[str, Any] | None,
) -> dict[str, str]:
    fields = map_record("Zuora__CustomerAccount__c", account, external_id_field=ACCOUNT_EXTERNAL_ID)
    for prefix, contact in (("Zuora__BillTo", bill_to), ("Zuora__SoldTo", sold_to)):
        if contact is None:
            continue
        for suffix, billing_field in CONTACT_FIELDS.items():
            if billing_field is None:
                name = " ".join(
                    str(contact[k]) for k in ("FirstName", "LastName") if contact.get(k)
                )
                value: Any = name or None
            else:
                value = contact.get(billing_field)
            if value is not None:
                fields[f"{prefix}{suffix}__c"] = crm_value(value, field=f"Contact.{suffix}")
    return fields


def _check_date(value: dt.date, field: str, shown: str) -> None:
    if not DATE_MIN <= value <= DATE_MAX:
        raise MappingError("invalid_date", f"{field} {shown} is outside {DATE_MIN}..{DATE_MAX}")

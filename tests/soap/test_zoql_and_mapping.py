"""Unit tests: safe ZOQL building, field mapping, request validation."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from soapkit import crm_request, request, zid

from entity_sync.handlers.sync.crm_ids import long_form, spellings
from entity_sync.handlers.sync.mapping import (
    CRM_FIELDS,
    READ_FIELDS,
    MappingError,
    crm_value,
    map_customer_account,
    map_record,
)
from entity_sync.handlers.sync.resolve import billing_accounts_of
from entity_sync.handlers.sync.validate import Rejection, validate_request
from entity_sync.handlers.sync.zoql import (
    MAX_CHARS,
    MAX_CONDITIONS,
    UnsafeQueryInput,
    quote,
    select_by,
)
from entity_sync_sandbox.query import check_limits, parse


def test_many_ids_become_or_chunks_within_vendor_limits_and_no_in() -> None:
    ids = [zid(0x08, n) for n in range(1000)]
    queries = select_by("Invoice", READ_FIELDS["Invoice"], "AccountId", ids)
    assert len(queries) > 1
    seen: list[str] = []
    for zoql in queries:
        parsed = parse(zoql)
        check_limits(zoql, parsed)  # the sandbox's vendor limits accept every chunk
        assert len(zoql) <= MAX_CHARS
        assert parsed.condition_count <= MAX_CONDITIONS
        assert " in " not in zoql.lower()
        seen.extend(c.value or "" for group in parsed.where for c in group)
    assert seen == ids


def test_duplicate_values_are_queried_once() -> None:
    (zoql,) = select_by("Account", ("Id",), "Id", [zid(1, 1), zid(1, 1)])
    assert zoql == f"select Id from Account where Id = '{zid(1, 1)}'"


def test_zoql_injection_in_an_id_is_refused() -> None:
    attack = "8a80c3a87f1d2e3b' or Name != 'x"
    with pytest.raises(UnsafeQueryInput, match="not a billing id"):
        select_by("Account", ("Id",), "Id", [attack])


def test_quoting_keeps_a_hostile_value_one_literal() -> None:
    hostile = "x' or Name != 'y\\"
    parsed = parse(f"select Id from zqu__BillingEntity__c where Name = {quote(hostile)}")
    assert parsed.condition_count == 1
    assert parsed.where[0][0].value == hostile


def test_identifiers_are_never_taken_from_input() -> None:
    with pytest.raises(ValueError, match="identifier"):
        select_by("Account; drop", ("Id",), "Id", [zid(1, 1)])


def test_values_become_crm_text() -> None:
    assert crm_value(Decimal("12.50")) == "12.50"
    assert crm_value(True) == "true"
    assert crm_value(dt.date(2026, 1, 2)) == "2026-01-02"
    assert crm_value(dt.date(1700, 1, 1)) == "1700-01-01"
    assert crm_value(dt.date(4000, 12, 31)) == "4000-12-31"


@pytest.mark.parametrize("value", [dt.date(1699, 12, 31), dt.date(4001, 1, 1), "1600-05-05"])
def test_dates_outside_the_crm_range_fail_the_record(value: object) -> None:
    with pytest.raises(MappingError) as caught:
        crm_value(value, field="EffectiveStartDate")
    assert caught.value.code == "invalid_date"
    assert "EffectiveStartDate" in caught.value.message


def test_customer_account_carries_account_and_both_contacts() -> None:
    account = {"Id": zid(0x0A, 1), "Name": "Acme", "CrmId": "001000000000001AAA",
               "Balance": Decimal("5.00"), "AccountNumber": "A-1"}  # fmt: skip
    bill_to = {"FirstName": "Ada", "LastName": "Lovelace", "WorkEmail": "ada@example.com"}
    sold_to = {"LastName": "Babbage", "City": "London"}
    fields = map_customer_account(account, bill_to, sold_to)
    assert fields["Zuora__External_Id__c"] == zid(0x0A, 1)
    assert fields["Zuora__Account__c"] == "001000000000001AAA"
    assert fields["Zuora__Balance__c"] == "5.00"
    assert fields["Zuora__BillToName__c"] == "Ada Lovelace"
    assert fields["Zuora__BillToWorkEmail__c"] == "ada@example.com"
    assert fields["Zuora__SoldToName__c"] == "Babbage"
    assert fields["Zuora__SoldToCity__c"] == "London"


def test_product_objects_are_keyed_by_zuora_id_and_linked() -> None:
    plan = {"Id": zid(0x1B, 1), "Name": "Gold", "EffectiveStartDate": dt.date(2026, 1, 1)}
    fields = map_record(
        "zqu__ProductRatePlan__c",
        plan,
        external_id_field="zqu__ZuoraId__c",
        links={"zqu__Product__c": "01t000000000001AAA"},
    )
    assert fields == {
        "zqu__ZuoraId__c": zid(0x1B, 1),
        "Name": "Gold",
        "zqu__EffectiveStartDate__c": "2026-01-01",
        "zqu__Product__c": "01t000000000001AAA",
    }


def test_every_mapped_billing_field_is_read() -> None:
    sources = {
        "Zuora__CustomerAccount__c": "Account", "Zuora__PaymentMethod__c": "PaymentMethod",
        "Zuora__Subscription__c": "Subscription", "Zuora__SubscriptionRatePlan__c": "RatePlan",
        "Zuora__SubscriptionProductCharge__c": "RatePlanCharge", "Zuora__ZInvoice__c": "Invoice",
        "Zuora__Payment__c": "Payment", "Product2": "Product",
        "zqu__ProductRatePlan__c": "ProductRatePlan",
        "zqu__ProductRatePlanCharge__c": "ProductRatePlanCharge",
        "zqu__ProductRatePlanChargeTier__c": "ProductRatePlanChargeTier",
    }  # fmt: skip
    for crm_object, billing_object in sources.items():
        assert set(CRM_FIELDS[crm_object].values()) <= set(READ_FIELDS[billing_object])


@pytest.mark.parametrize(
    ("ids", "origin", "entities", "code"),
    [
        ([zid(1, n) for n in range(11)], "api", None, "too_many_ids"),
        ([zid(1, n) for n in range(9)], "ui", None, "too_many_ids"),
        (["not-hex"], "api", None, "malformed_id"),
        (["8a80c3a87f1d2e3b' or '1' = '1"], "api", None, "malformed_id"),
        ([zid(1, 1), zid(1, 1).upper()], "api", None, "duplicate_id"),
        ([zid(1, 1)], "api", {zid(1, 1): "mars"}, "unknown_entity"),
        ([], "api", None, "no_ids"),
    ],
)
def test_invalid_requests_are_rejected_with_a_reason(
    ids: list[str], origin: str, entities: dict[str, str] | None, code: str
) -> None:
    checked = validate_request(
        request(ids, origin=origin, entity_by_id=entities), known_entities={"eu"}
    )
    assert isinstance(checked, Rejection)
    assert checked.reason.startswith(code + ":")


def test_valid_request_keeps_ids_in_order() -> None:
    ids = [zid(1, n) for n in range(8)]
    checked = validate_request(
        request(ids, origin="ui", entity_by_id={ids[0]: "eu"}), known_entities={"eu"}
    )
    assert checked == ids


CRM_X = "001Dn00000A1b2cIAB"


@pytest.mark.parametrize(
    ("ids", "origin", "entities", "code"),
    [
        ([long_form(f"001Dn{n:010d}") for n in range(11)], "api", None, "too_many_ids"),
        ([long_form(f"001Dn{n:010d}") for n in range(9)], "ui", None, "too_many_ids"),
        (["001Dn00000A1b2"], "api", None, "malformed_id"),
        (["001Dn00000A1b2cIA"], "api", None, "malformed_id"),
        (["001Dn00000A1b2c' or CrmId != '"], "api", None, "malformed_id"),
        ([CRM_X, CRM_X[:15]], "api", None, "duplicate_id"),
        ([CRM_X], "api", {"001Dn00000B7xYzIAJ": "eu"}, "unknown_id"),
        ([CRM_X], "api", {CRM_X: "mars"}, "unknown_entity"),
        ([], "api", None, "no_ids"),
    ],
)
def test_invalid_crm_account_requests_are_rejected_with_a_reason(
    ids: list[str], origin: str, entities: dict[str, str] | None, code: str
) -> None:
    checked = validate_request(
        crm_request(ids, origin=origin, entity_by_id=entities), known_entities={"eu"}
    )
    assert isinstance(checked, Rejection)
    assert checked.reason.startswith(code + ":")


def test_crm_account_ids_of_15_characters_are_case_sensitive() -> None:
    ids = [CRM_X[:15], CRM_X[:14] + "C"]  # differ only in the case of one letter
    req = crm_request(ids, entity_by_id={CRM_X: "eu"})  # the 18-character spelling of the first
    assert validate_request(req, known_entities={"eu"}) == ids
    assert long_form(CRM_X[:15]) == CRM_X
    assert spellings(CRM_X) == [CRM_X, CRM_X[:15]]
    assert spellings(CRM_X[:15]) == [CRM_X[:15], CRM_X]


class RecordingBilling:
    """A fake billing API over records in memory that keeps every ZOQL query it is sent and
    holds it to the vendor's limits."""

    def __init__(self, records: list[dict[str, str]]) -> None:
        self.records = records
        self.queries: list[str] = []

    def ensure_login(self) -> str:
        return "session"

    def query(self, zoql: str) -> list[dict[str, str]]:
        self.queries.append(zoql)
        parsed = parse(zoql)
        check_limits(zoql, parsed)
        return [r for r in self.records if parsed.matches(r)]


def test_crm_account_lookup_is_one_query_asking_for_both_spellings() -> None:
    ids = [long_form(f"001Dn{n:010d}") for n in range(10)]
    billing = RecordingBilling(
        [
            {"Id": zid(0x0A, 2), "CrmId": ids[3]},
            {"Id": zid(0x0A, 1), "CrmId": ids[3][:15]},
            {"Id": zid(0x0A, 3), "CrmId": ids[3][:14] + "x"},  # another account
        ]
    )
    found = billing_accounts_of(billing, ids)
    (zoql,) = billing.queries
    parsed = parse(zoql)
    assert parsed.object == "Account"
    assert {c.field for group in parsed.where for c in group} == {"CrmId"}
    assert [c.value for group in parsed.where for c in group] == [
        s for i in ids for s in spellings(i)
    ]
    assert found == {i: ([zid(0x0A, 1), zid(0x0A, 2)] if i == ids[3] else []) for i in ids}

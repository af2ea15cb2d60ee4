"""The SOAP clients against the sandboxes over real HTTP: paging, limits, sessions, faults,
hostile responses and credentials."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest
from soapkit import account_seed, billing_settings, crm_settings, zid

from entity_sync.handlers.errors import PermanentError, TransientError
from entity_sync.handlers.soap.billing import BillingClient
from entity_sync.handlers.soap.crm import CrmClient
from entity_sync.handlers.soap.errors import (
    InvalidResponse,
    LoginFailed,
    SoapPermanentError,
    SoapTransientError,
    UnsafeResponse,
)
from entity_sync_sandbox import BillingSandboxHandle, CrmSandboxHandle
from entity_sync_sandbox.server import RawReply

pytestmark = pytest.mark.soap

MakeBilling = Callable[..., BillingSandboxHandle]
MakeCrm = Callable[..., CrmSandboxHandle]


def _invoices(n: int) -> dict[str, list[dict[str, Any]]]:
    return {"Invoice": [{"Id": zid(8, i), "AccountId": zid(0x0A, 1), "InvoiceNumber": f"I{i}"}
                        for i in range(n)]}  # fmt: skip


def test_query_pages_with_query_more_until_done(make_billing: MakeBilling) -> None:
    sandbox = make_billing(_invoices(25), page_size=10)
    with BillingClient(billing_settings(sandbox.url)) as client:
        rows = client.query(
            f"select Id, InvoiceNumber from Invoice where AccountId = '{zid(0x0A, 1)}'"
        )
    assert sorted(r["InvoiceNumber"] for r in rows) == sorted(f"I{i}" for i in range(25))
    assert sandbox.calls("query") == 1
    assert sandbox.calls("queryMore") == 2


def test_billing_query_batch_size_header_is_honoured(make_billing: MakeBilling) -> None:
    sandbox = make_billing(_invoices(9))
    with BillingClient(billing_settings(sandbox.url, batch_size=4)) as client:
        assert len(client.query("select Id from Invoice")) == 9
    assert sandbox.calls("queryMore") == 2


@pytest.mark.parametrize(
    ("zoql", "needle"),
    [
        ("select Id from Account where Id in ('a', 'b')", "IN is not supported"),
        ("select Id from Account where " + " or ".join(["Id = 'x'"] * 201), "201 conditions"),
        ("select Id from Account where Name = '" + "x" * 10_000 + "'", "characters"),
        ("select Id Account", "expected 'from'"),
    ],
)
def test_vendor_query_limits_answer_malformed_query(
    make_billing: MakeBilling, zoql: str, needle: str
) -> None:
    sandbox = make_billing({})
    client = BillingClient(billing_settings(sandbox.url))
    with client, pytest.raises(SoapPermanentError) as caught:
        client.query(zoql)
    assert caught.value.code == "MALFORMED_QUERY"
    assert needle in caught.value.message
    assert sandbox.calls("query") == 1  # permanent: not retried


def test_expired_session_is_renewed_once(make_billing: MakeBilling) -> None:
    sandbox = make_billing(_invoices(3))
    with BillingClient(billing_settings(sandbox.url)) as client:
        assert len(client.query("select Id from Invoice")) == 3
        sandbox.expire_sessions()
        assert len(client.query("select Id from Invoice")) == 3
    assert sandbox.calls("login") == 2
    assert sandbox.calls("query") == 3  # one refused with INVALID_SESSION, repeated once


def test_session_ttl_expiry_is_survived(make_crm: MakeCrm) -> None:
    sandbox = make_crm(session_ttl=0.0)  # every session is already expired when next used
    with CrmClient(crm_settings(sandbox.url)) as client, pytest.raises(SoapPermanentError) as e:
        client.query("select Id from Product2")
    assert e.value.code == "INVALID_SESSION_ID"  # re-login once, then a clear error
    assert sandbox.calls("login") == 2


def test_http_500_burst_is_retried_with_backoff(make_billing: MakeBilling) -> None:
    sandbox = make_billing(_invoices(2))
    sleeps: list[float] = []
    settings = billing_settings(sandbox.url, backoff_seconds=0.01, backoff_max_seconds=1.0)
    with BillingClient(settings, sleep=sleeps.append) as client:
        client.ensure_login()
        sandbox.fail_next(3)
        assert len(client.query("select Id from Invoice")) == 2
    assert len(sleeps) == 3
    assert all(0 <= s <= 1.0 for s in sleeps)


def test_html_500_page_gives_a_clear_transient_error_after_bounded_retries(
    make_billing: MakeBilling,
) -> None:
    sandbox = make_billing({})
    with BillingClient(billing_settings(sandbox.url, max_retries=2)) as client:
        client.ensure_login()
        sandbox.fail_next(10)
        with pytest.raises(SoapTransientError) as caught:
            client.query("select Id from Account")
    assert isinstance(caught.value, TransientError)
    assert caught.value.code == "http_500"
    assert "text/html" in caught.value.message
    assert "gave up after 3 attempts" in caught.value.message
    assert sandbox.calls("query") == 3


@pytest.mark.parametrize(
    ("body", "error", "code"),
    [
        (b"this is not xml at all", InvalidResponse, "invalid_response"),
        (
            b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY boom "boom">]>'
            b'<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">'
            b"<soapenv:Body>&boom;</soapenv:Body></soapenv:Envelope>",
            UnsafeResponse,
            "unsafe_response",
        ),
        (
            b'<?xml version="1.0"?><!DOCTYPE x SYSTEM "file:///etc/passwd">'
            b'<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">'
            b"<soapenv:Body/></soapenv:Envelope>",
            UnsafeResponse,
            "unsafe_response",
        ),
    ],
)
def test_hostile_responses_are_refused(
    make_billing: MakeBilling, body: bytes, error: type[Exception], code: str
) -> None:
    sandbox = make_billing({})
    with BillingClient(billing_settings(sandbox.url)) as client:
        client.ensure_login()
        sandbox.script(RawReply(200, body, "text/xml"))
        with pytest.raises(error) as caught:
            client.query("select Id from Account")
    assert isinstance(caught.value, PermanentError)
    assert getattr(caught.value, "code", None) == code
    assert "passwd" not in str(caught.value) or code == "unsafe_response"
    assert sandbox.calls("query") == 1  # refused, not retried


def test_wrong_credentials_give_one_clear_error_without_a_retry_storm(
    make_billing: MakeBilling, caplog: pytest.LogCaptureFixture
) -> None:
    sandbox = make_billing({})
    secret = "Wr0ng-Secret-Pa55"
    caplog.set_level(logging.DEBUG)
    with BillingClient(billing_settings(sandbox.url, password=secret)) as client:
        for _ in range(5):
            with pytest.raises(LoginFailed) as caught:
                client.query("select Id from Account")
    assert caught.value.reason == "login_failed"
    assert caught.value.code == "INVALID_VALUE"
    assert "sandbox" in caught.value.message
    assert secret not in caught.value.message
    assert sandbox.calls("login") == 1  # remembered for the cooldown, not repeated
    assert sandbox.calls("query") == 0
    assert secret not in caplog.text


def test_crm_wrong_credentials(make_crm: MakeCrm) -> None:
    sandbox = make_crm()
    client = CrmClient(crm_settings(sandbox.url, password="nope"))
    with client, pytest.raises(LoginFailed, match="INVALID_LOGIN") as caught:
        client.ensure_login()
    assert "nope" not in str(caught.value)
    assert sandbox.calls("login") == 1


def test_slow_endpoint_times_out_as_transient(make_billing: MakeBilling) -> None:
    sandbox = make_billing({}, latency_ms=300)
    settings = billing_settings(sandbox.url, read_timeout=0.05, max_retries=1)
    with BillingClient(settings) as client, pytest.raises(SoapTransientError) as caught:
        client.ensure_login()
    assert caught.value.code == "timeout"
    assert sandbox.calls("login") == 2


def test_unreachable_endpoint_is_transient() -> None:
    settings = billing_settings("http://127.0.0.1:9/", max_retries=1)
    with BillingClient(settings) as client, pytest.raises(SoapTransientError) as caught:
        client.ensure_login()
    assert caught.value.code == "connection_error"


def test_billing_login_names_the_entity(make_billing: MakeBilling) -> None:
    sandbox = make_billing({}, entities={"eu"})
    with BillingClient(billing_settings(sandbox.url), entity="eu") as client:
        client.ensure_login()
    assert sandbox.state.logins == ["eu"]
    other = BillingClient(billing_settings(sandbox.url), entity="mars")
    with other, pytest.raises(LoginFailed, match="Unknown entity"):
        other.ensure_login()


def test_upsert_created_then_updated_with_per_row_errors(make_crm: MakeCrm) -> None:
    sandbox = make_crm()
    ext = "Zuora__External_Id__c"
    with CrmClient(crm_settings(sandbox.url)) as client:
        first = client.upsert("Zuora__ZInvoice__c", ext, [{ext: "a", "Name": "A"}, {ext: "b"}])
        second = client.upsert(
            "Zuora__ZInvoice__c",
            ext,
            [{ext: "a", "Name": "A2"}, {ext: "c"}, {ext: "c"}, {"Name": "no key"}],
        )
    assert [r.created for r in first] == [True, True]
    assert second[0].success
    assert not second[0].created
    assert second[0].id == first[0].id
    assert [e.code for e in second[1].errors] == ["DUPLICATE_EXTERNAL_ID"]
    assert [e.code for e in second[2].errors] == ["DUPLICATE_EXTERNAL_ID"]
    assert [e.code for e in second[3].errors] == ["REQUIRED_FIELD_MISSING"]
    assert sandbox.state.find("Zuora__ZInvoice__c", ext, "a")["Name"] == "A2"  # type: ignore[index]


def test_upsert_chunks_at_most_200(make_crm: MakeCrm) -> None:
    sandbox = make_crm()
    ext = "zqu__ZuoraId__c"
    with CrmClient(crm_settings(sandbox.url)) as client:
        rows = client.upsert("Product2", ext, [{ext: f"p{i}"} for i in range(450)])
    assert len(rows) == 450
    assert all(r.success for r in rows)
    assert sandbox.state.upsert_sizes == [200, 200, 50]


def test_sandbox_refuses_more_than_200_records(make_crm: MakeCrm) -> None:
    sandbox = make_crm()
    ext = "zqu__ZuoraId__c"
    with CrmClient(crm_settings(sandbox.url, chunk_size=200)) as client:
        client._chunk_size = 201  # bypass the client's own limit to reach the sandbox's
        with pytest.raises(SoapPermanentError) as caught:
            client.upsert("Product2", ext, [{ext: f"p{i}"} for i in range(201)])
    assert caught.value.code == "EXCEEDED_ID_LIMIT"


def test_locked_rows_are_retried_alone(make_crm: MakeCrm) -> None:
    sandbox = make_crm()
    ext = "zqu__ZuoraId__c"
    sandbox.lock_rows(["p1", "p3"], times=2)
    with CrmClient(crm_settings(sandbox.url)) as client:
        rows = client.upsert("Product2", ext, [{ext: f"p{i}"} for i in range(5)])
    assert all(r.success for r in rows)
    assert sandbox.state.upsert_sizes == [5, 2, 2]


def test_rows_locked_for_good_keep_their_code(make_crm: MakeCrm) -> None:
    sandbox = make_crm()
    ext = "zqu__ZuoraId__c"
    sandbox.lock_rows(["p1"], times=100)
    with CrmClient(crm_settings(sandbox.url, max_retries=2)) as client:
        rows = client.upsert("Product2", ext, [{ext: f"p{i}"} for i in range(3)])
    assert [r.success for r in rows] == [True, False, True]
    assert [e.code for e in rows[1].errors] == ["UNABLE_TO_LOCK_ROW"]


def test_crm_query_for_billing_entity(make_crm: MakeCrm) -> None:
    sandbox = make_crm({"zqu__BillingEntity__c": [{"Name": "eu"}, {"Name": "us"}]})
    with CrmClient(crm_settings(sandbox.url)) as client:
        rows = client.query("select Id, Name from zqu__BillingEntity__c where Name = 'eu'")
    assert [(r["type"], r["Name"]) for r in rows] == [("zqu__BillingEntity__c", "eu")]
    assert rows[0]["Id"]


def test_http_connections_are_reused(make_billing: MakeBilling) -> None:
    sandbox = make_billing(account_seed()[0])
    with BillingClient(billing_settings(sandbox.url)) as client:
        for _ in range(5):
            client.query("select Id from Account")
    assert sandbox.calls() == 6
    assert sandbox.server.connections == 1


def test_wsdl_is_parsed_once_per_path(make_crm: MakeCrm) -> None:
    from entity_sync.handlers.soap.transport import load_wsdl

    sandbox = make_crm()
    with CrmClient(crm_settings(sandbox.url)) as first:
        before = load_wsdl.cache_info()
        with CrmClient(crm_settings(sandbox.url)) as second:
            after = load_wsdl.cache_info()
            assert first._zeep.wsdl is second._zeep.wsdl
    assert after.hits == before.hits + 1
    assert after.misses == before.misses

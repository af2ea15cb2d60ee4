"""Billing sandbox (Zuora a.79 style): login (optionally into an entity), ZOQL query with the
vendor's limits, queryMore paging. Records live in memory, seeded from JSON, per entity: a
session sees only the records of the entity it logged in to (no entity: the default one)."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, Unpack

from lxml import etree  # lxml ships no stubs

from entity_sync_sandbox.query import Query, QueryError, check_limits, parse
from entity_sync_sandbox.seed import Records, Seed, by_entity
from entity_sync_sandbox.server import (
    SANDBOX_PASSWORD,
    SANDBOX_USER,
    Faults,
    SandboxHandle,
    ServeOptions,
    SessionBook,
    faults_of,
)
from entity_sync_sandbox.soap import XSI, Request, SoapFault, child_text, envelope, fault_envelope

ZNS = "http://api.zuora.com/"
ONS = "http://object.api.zuora.com/"
FNS = "http://fault.api.zuora.com/"

# Objects a query may name even when the seed has none of them.
KNOWN_OBJECTS = frozenset(
    {
        "Account", "Contact", "PaymentMethod", "Subscription", "RatePlan", "RatePlanCharge",
        "Invoice", "Payment", "Product", "ProductRatePlan", "ProductRatePlanCharge",
        "ProductRatePlanChargeTier", "Amendment", "InvoiceItem",
    }
)  # fmt: skip


@dataclass
class _Cursor:
    query: Query
    rows: list[dict[str, Any]]
    position: int


class BillingSandbox:
    """The state and the SOAP operations; transport-free so tests can also call it directly."""

    def __init__(
        self,
        seed: Seed | None = None,
        *,
        username: str = SANDBOX_USER,
        password: str = SANDBOX_PASSWORD,
        page_size: int = 2000,
        entities: Collection[str] | None = None,
        faults: Faults | None = None,
    ) -> None:
        self.username = username
        self._password = password
        self.page_size = page_size
        # None: login accepts any entity name (an entity without records sees none).
        self.entities = None if entities is None else frozenset(entities)
        self.faults = faults or Faults()
        self.sessions = SessionBook()
        self.logins: list[str | None] = []  # entity named by each successful login
        self._lock = threading.Lock()
        self._cursors: dict[str, _Cursor] = {}
        self._records: dict[str | None, Records] = {None: {}}
        self.add(seed or {})

    def add(self, seed: Seed) -> None:
        """Add records (flat: the default entity; `entities`: per entity); an Id is given to
        those without one. Entities of the seed are accepted by login."""
        with self._lock:
            for entity, records in by_entity(seed).items():
                if entity is not None and self.entities is not None:
                    self.entities |= {entity}
                store = self._records.setdefault(entity, {})
                for name, rows in records.items():
                    for row in rows:
                        row.setdefault("Id", secrets.token_hex(16))
                    store.setdefault(name, []).extend(rows)

    def records(self, entity: str | None = None) -> Records:
        """A copy of the records one entity holds (None: the default entity)."""
        with self._lock:
            held = self._records.get(entity, {})
            return {name: [dict(r) for r in rows] for name, rows in held.items()}

    # -- SOAP ------------------------------------------------------------------------------

    def dispatch(self, request: Request, base_url: str) -> bytes:
        if request.namespace != ZNS:
            raise SoapFault("UnexpectedErrorFault", "INVALID_TYPE", "unknown namespace")
        if request.operation == "login":
            return self._login(request, base_url)
        entity = self._session(request)
        if request.operation == "query":
            return self._query(request, entity)
        if request.operation == "queryMore":
            return self._query_more(request)
        raise SoapFault(
            "UnexpectedErrorFault", "INVALID_TYPE", f"operation {request.operation} not supported"
        )

    def _login(self, request: Request, base_url: str) -> bytes:
        username = child_text(request.body, "username")
        password = child_text(request.body, "password")
        entity = child_text(request.body, "entityName") or child_text(request.body, "entityId")
        if username != self.username or not secrets.compare_digest(
            (password or "").encode(), self._password.encode()
        ):
            raise SoapFault(
                "LoginFault", "INVALID_VALUE", "Invalid login. User name and password do not match."
            )
        if entity is not None and self.entities is not None and entity not in self.entities:
            raise SoapFault("LoginFault", "INVALID_VALUE", f"Unknown entity: {entity}")
        token = self.sessions.open(self.faults.session_ttl, owner=entity)
        with self._lock:
            self.logins.append(entity)
        response = etree.Element(f"{{{ZNS}}}loginResponse", nsmap={"ns1": ZNS})
        result = etree.SubElement(response, f"{{{ZNS}}}result")
        etree.SubElement(result, f"{{{ZNS}}}Session").text = token
        etree.SubElement(result, f"{{{ZNS}}}ServerUrl").text = base_url
        return envelope(response)

    def _session(self, request: Request) -> str | None:
        token = child_text(request.headers.get("SessionHeader"), "session")
        try:
            owner: str | None = self.sessions.owner(token)
        except KeyError:
            raise SoapFault("UnexpectedErrorFault", "INVALID_SESSION", "Invalid Session") from None
        return owner

    def _batch_size(self, request: Request) -> int:
        raw = child_text(request.headers.get("QueryOptions"), "batchSize")
        size = self.page_size
        if raw and raw.isdigit() and int(raw) > 0:
            size = min(size, int(raw))
        return size

    def _query(self, request: Request, entity: str | None) -> bytes:
        text = child_text(request.body, "queryString") or ""
        try:
            query = parse(text)
            check_limits(text, query)
        except QueryError as exc:
            raise SoapFault("MalformedQueryFault", exc.code, str(exc)) from None
        with self._lock:
            held = self._records.get(entity, {})  # the session's entity only
            if query.object not in held and query.object not in KNOWN_OBJECTS:
                raise SoapFault(
                    "MalformedQueryFault", "INVALID_TYPE", f"invalid type {query.object}"
                )
            rows = [dict(r) for r in held.get(query.object, []) if query.matches(r)]
        return self._page(_Cursor(query, rows, 0), self._batch_size(request), "queryResponse")

    def _query_more(self, request: Request) -> bytes:
        locator = child_text(request.body, "queryLocator") or ""
        with self._lock:
            cursor = self._cursors.pop(locator, None)
        if cursor is None:
            raise SoapFault("InvalidQueryLocatorFault", "INVALID_VALUE", "invalid queryLocator")
        return self._page(cursor, self._batch_size(request), "queryMoreResponse")

    def _page(self, cursor: _Cursor, size: int, element: str) -> bytes:
        page = cursor.rows[cursor.position : cursor.position + size]
        cursor.position += len(page)
        done = cursor.position >= len(cursor.rows)
        locator = None
        if not done:
            locator = secrets.token_hex(16)
            with self._lock:
                self._cursors[locator] = cursor
        response = etree.Element(f"{{{ZNS}}}{element}", nsmap={"ns1": ZNS, "ns2": ONS, "xsi": XSI})
        result = etree.SubElement(response, f"{{{ZNS}}}result")
        etree.SubElement(result, f"{{{ZNS}}}done").text = "true" if done else "false"
        loc = etree.SubElement(result, f"{{{ZNS}}}queryLocator")
        if locator is None:
            loc.set(f"{{{XSI}}}nil", "true")
        else:
            loc.text = locator
        fields = _ordered(cursor.query.fields)
        for row in page:
            record = etree.SubElement(result, f"{{{ZNS}}}records")
            record.set(f"{{{XSI}}}type", f"ns2:{cursor.query.object}")
            for name in fields:
                value = row.get(name)
                if value is not None:
                    etree.SubElement(record, f"{{{ONS}}}{name}").text = _text(value)
        etree.SubElement(result, f"{{{ZNS}}}size").text = str(len(cursor.rows))
        return envelope(response)


def render_fault(fault: SoapFault) -> bytes:
    detail = etree.Element(f"{{{FNS}}}{fault.element}", nsmap={"ns1": FNS})
    etree.SubElement(detail, f"{{{FNS}}}FaultCode").text = fault.code
    etree.SubElement(detail, f"{{{FNS}}}FaultMessage").text = fault.message
    return fault_envelope(f"fns:{fault.code}", fault.message, detail=detail)


def _ordered(fields: tuple[str, ...]) -> list[str]:
    """Id first, then the vendor's order (alphabetical ignoring case), which zeep expects."""
    rest = sorted({f for f in fields if f != "Id"}, key=str.lower)
    return (["Id"] if "Id" in fields else []) + rest


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class BillingSandboxHandle(SandboxHandle[BillingSandbox]):
    """A running billing sandbox: `.url`, `.stop()`, `.expire_sessions()`, fault controls."""


class BillingOptions(ServeOptions, total=False):
    entities: Collection[str] | None  # entity names login accepts besides the seed's; None: any


def start_billing_sandbox(
    seed: Seed | None = None, **options: Unpack[BillingOptions]
) -> BillingSandboxHandle:
    state = BillingSandbox(
        seed,
        username=options.get("username", SANDBOX_USER),
        password=options.get("password", SANDBOX_PASSWORD),
        page_size=options.get("page_size", 2000),
        entities=options.get("entities"),
        faults=faults_of(options),
    )
    return BillingSandboxHandle.serve(state, render_fault, options)

"""CRM sandbox (Salesforce partner v58 style): login, upsert by external id into in-memory
records with per-row results, query/queryMore. Injects UNABLE_TO_LOCK_ROW on chosen rows."""

from __future__ import annotations

import hashlib
import itertools
import secrets
import threading
from collections import Counter
from collections.abc import Iterable
from typing import Any

from lxml import etree  # lxml ships no stubs

from entity_sync_sandbox.query import QueryError, parse
from entity_sync_sandbox.seed import Seed, check_seed
from entity_sync_sandbox.server import (
    SANDBOX_PASSWORD,
    SANDBOX_USER,
    Faults,
    SandboxHandle,
    SessionBook,
)
from entity_sync_sandbox.soap import (
    XSI,
    Request,
    SoapFault,
    child_text,
    children,
    envelope,
    fault_envelope,
)

TNS = "urn:partner.soap.sforce.com"
ENS = "urn:sobject.partner.soap.sforce.com"
FNS = "urn:fault.partner.soap.sforce.com"
MAX_UPSERT = 200


class CrmSandbox:
    def __init__(
        self,
        seed: Seed | None = None,
        *,
        username: str = SANDBOX_USER,
        password: str = SANDBOX_PASSWORD,
        page_size: int = 2000,
        lock_rate: float = 0.0,
        faults: Faults | None = None,
    ) -> None:
        self.username = username
        self._password = password
        self.page_size = page_size
        self.lock_rate = lock_rate
        self.faults = faults or Faults()
        self.sessions = SessionBook()
        self.upsert_sizes: list[int] = []
        self._locks_left: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._cursors: dict[str, list[dict[str, Any]]] = {}
        self.records: dict[str, dict[str, dict[str, Any]]] = {}  # type -> Id -> fields
        for sobject_type, rows in check_seed(seed or {}).items():
            for row in rows:
                self._insert(sobject_type, row)

    # -- test helpers ----------------------------------------------------------------------

    def lock_rows(self, external_ids: Iterable[str], times: int = 1) -> None:
        """Upserts of these external ids fail `times` times with UNABLE_TO_LOCK_ROW."""
        with self._lock:
            for value in external_ids:
                self._locks_left[value] += times

    def find(self, sobject_type: str, field: str, value: str) -> dict[str, Any] | None:
        with self._lock:
            for record in self.records.get(sobject_type, {}).values():
                if record.get(field) == value:
                    return dict(record)
        return None

    def all(self, sobject_type: str) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(r) for r in self.records.get(sobject_type, {}).values()]

    # -- SOAP ------------------------------------------------------------------------------

    def dispatch(self, request: Request, base_url: str) -> bytes:
        if request.namespace != TNS:
            raise SoapFault("UnexpectedErrorFault", "INVALID_OPERATION", "unknown namespace")
        if request.operation == "login":
            return self._login(request, base_url)
        token = child_text(request.headers.get("SessionHeader"), "sessionId")
        try:
            self.sessions.owner(token)
        except KeyError:
            raise SoapFault(
                "UnexpectedErrorFault",
                "INVALID_SESSION_ID",
                "Invalid Session ID found in SessionHeader: Illegal Session",
            ) from None
        if request.operation == "upsert":
            return self._upsert(request)
        if request.operation == "query":
            return self._query(request)
        if request.operation == "queryMore":
            return self._query_more(request)
        raise SoapFault(
            "UnexpectedErrorFault", "INVALID_OPERATION", f"{request.operation} not supported"
        )

    def _login(self, request: Request, base_url: str) -> bytes:
        username = child_text(request.body, "username")
        password = child_text(request.body, "password") or ""
        if username != self.username or not secrets.compare_digest(
            password.encode(), self._password.encode()
        ):
            raise SoapFault(
                "LoginFault",
                "INVALID_LOGIN",
                "Invalid username, password, security token; or user locked out.",
            )
        token = self.sessions.open(self.faults.session_ttl)
        response = etree.Element(f"{{{TNS}}}loginResponse", nsmap={None: TNS, "xsi": XSI})
        result = etree.SubElement(response, f"{{{TNS}}}result")
        etree.SubElement(result, f"{{{TNS}}}metadataServerUrl").text = base_url
        etree.SubElement(result, f"{{{TNS}}}passwordExpired").text = "false"
        etree.SubElement(result, f"{{{TNS}}}sandbox").text = "true"
        etree.SubElement(result, f"{{{TNS}}}serverUrl").text = base_url
        etree.SubElement(result, f"{{{TNS}}}sessionId").text = token
        etree.SubElement(result, f"{{{TNS}}}userId").text = "005000000000001AAA"
        return envelope(response)

    def _upsert(self, request: Request) -> bytes:
        ext_field = child_text(request.body, "externalIDFieldName") or ""
        objects = children(request.body, "sObjects")
        if len(objects) > MAX_UPSERT:
            raise SoapFault(
                "UnexpectedErrorFault",
                "EXCEEDED_ID_LIMIT",
                f"record limit reached. cannot submit more than {MAX_UPSERT} records "
                "into this call",
            )
        rows = [_sobject_fields(o) for o in objects]
        counts = Counter(str(fields.get(ext_field)) for _, fields in rows)
        response = etree.Element(f"{{{TNS}}}upsertResponse", nsmap={None: TNS, "xsi": XSI})
        with self._lock:
            self.upsert_sizes.append(len(rows))
            for sobject_type, fields in rows:
                value = fields.get(ext_field)
                result = etree.SubElement(response, f"{{{TNS}}}result")
                error = self._row_error(ext_field, value, counts)
                if error is not None:
                    _result(result, created=False, record_id=None, error=error)
                    continue
                record_id, created = self._upsert_row(sobject_type, ext_field, fields)
                _result(result, created=created, record_id=record_id, error=None)
        return envelope(response)

    def _row_error(
        self, ext_field: str, value: Any, counts: Counter[str]
    ) -> tuple[str, str] | None:
        if not value:
            return ("REQUIRED_FIELD_MISSING", f"Required fields are missing: [{ext_field}]")
        if counts[str(value)] > 1:
            return ("DUPLICATE_EXTERNAL_ID", f"Duplicate external id specified: {value}")
        if self._locks_left[str(value)] > 0:
            self._locks_left[str(value)] -= 1
            return ("UNABLE_TO_LOCK_ROW", "unable to obtain exclusive access to this record")
        if self.lock_rate and self.faults.rng.random() < self.lock_rate:
            return ("UNABLE_TO_LOCK_ROW", "unable to obtain exclusive access to this record")
        return None

    def _upsert_row(
        self, sobject_type: str, ext_field: str, fields: dict[str, Any]
    ) -> tuple[str, bool]:
        for record_id, record in self.records.get(sobject_type, {}).items():
            if record.get(ext_field) == fields[ext_field]:
                record.update(fields)
                return record_id, False
        return self._insert(sobject_type, fields), True

    def _insert(self, sobject_type: str, fields: dict[str, Any]) -> str:
        record_id = str(fields.get("Id") or _new_id(sobject_type, next(self._ids)))
        self.records.setdefault(sobject_type, {})[record_id] = {**fields, "Id": record_id}
        return record_id

    def _query(self, request: Request) -> bytes:
        text = child_text(request.body, "queryString") or ""
        try:
            query = parse(text)
        except QueryError as exc:
            raise SoapFault("MalformedQueryFault", exc.code, str(exc)) from None
        with self._lock:
            rows = [
                {"type": query.object, **{f: r.get(f) for f in query.fields}}
                for r in self.records.get(query.object, {}).values()
                if query.matches(r)
            ]
        return self._page(rows, "queryResponse")

    def _query_more(self, request: Request) -> bytes:
        locator = child_text(request.body, "queryLocator") or ""
        with self._lock:
            rows = self._cursors.pop(locator, None)
        if rows is None:
            raise SoapFault("InvalidQueryLocatorFault", "INVALID_QUERY_LOCATOR", "invalid locator")
        return self._page(rows, "queryMoreResponse")

    def _page(self, rows: list[dict[str, Any]], element: str) -> bytes:
        page, rest = rows[: self.page_size], rows[self.page_size :]
        locator = None
        if rest:
            locator = secrets.token_hex(16)
            with self._lock:
                self._cursors[locator] = rest
        response = etree.Element(f"{{{TNS}}}{element}", nsmap={None: TNS, "sf": ENS, "xsi": XSI})
        result = etree.SubElement(response, f"{{{TNS}}}result")
        etree.SubElement(result, f"{{{TNS}}}done").text = "false" if rest else "true"
        loc = etree.SubElement(result, f"{{{TNS}}}queryLocator")
        if locator is None:
            loc.set(f"{{{XSI}}}nil", "true")
        else:
            loc.text = locator
        for row in page:
            record = etree.SubElement(result, f"{{{TNS}}}records")
            record.set(f"{{{XSI}}}type", "sf:sObject")
            etree.SubElement(record, f"{{{ENS}}}type").text = row["type"]
            etree.SubElement(record, f"{{{ENS}}}Id").text = row.get("Id")
            for name, value in row.items():
                if name in ("type", "Id"):
                    continue
                element_ = etree.SubElement(record, f"{{{ENS}}}{name}")
                if value is None:
                    element_.set(f"{{{XSI}}}nil", "true")
                else:
                    element_.text = str(value)
        etree.SubElement(result, f"{{{TNS}}}size").text = str(len(rows))
        return envelope(response)


def render_fault(fault: SoapFault) -> bytes:
    detail = etree.Element(f"{{{FNS}}}{fault.element}", nsmap={"sf": FNS, "xsi": XSI})
    detail.set(f"{{{XSI}}}type", f"sf:{fault.element}")
    etree.SubElement(detail, f"{{{FNS}}}exceptionCode").text = fault.code
    etree.SubElement(detail, f"{{{FNS}}}exceptionMessage").text = fault.message
    return fault_envelope(f"sf:{fault.code}", f"{fault.code}: {fault.message}", detail=detail)


def _sobject_fields(element: etree._Element) -> tuple[str, dict[str, Any]]:
    sobject_type = ""
    fields: dict[str, Any] = {}
    for child in element:
        if not isinstance(child.tag, str):
            continue
        name = etree.QName(child).localname
        if name == "type":
            sobject_type = child.text or ""
        elif name in ("Id", "fieldsToNull"):
            continue
        elif child.get(f"{{{XSI}}}nil") != "true":
            fields[name] = child.text or ""
    return sobject_type, fields


def _result(
    element: etree._Element, *, created: bool, record_id: str | None, error: tuple[str, str] | None
) -> None:
    etree.SubElement(element, f"{{{TNS}}}created").text = "true" if created else "false"
    if error is not None:
        errors = etree.SubElement(element, f"{{{TNS}}}errors")
        etree.SubElement(errors, f"{{{TNS}}}message").text = error[1]
        etree.SubElement(errors, f"{{{TNS}}}statusCode").text = error[0]
    id_element = etree.SubElement(element, f"{{{TNS}}}id")
    if record_id is None:
        id_element.set(f"{{{XSI}}}nil", "true")
    else:
        id_element.text = record_id
    etree.SubElement(element, f"{{{TNS}}}success").text = "false" if error else "true"


def _new_id(sobject_type: str, number: int) -> str:
    """18 characters like a CRM id: a 3-character prefix per type, then a counter."""
    prefix = "a" + hashlib.sha256(sobject_type.encode()).hexdigest()[:2]
    return f"{prefix}{number:012d}AAA"


class CrmSandboxHandle(SandboxHandle[CrmSandbox]):
    """A running CRM sandbox: the common controls plus `.lock_rows(...)`."""

    def lock_rows(self, external_ids: Iterable[str], times: int = 1) -> None:
        self.state.lock_rows(external_ids, times)


def start_crm_sandbox(
    seed: Seed | None = None,
    *,
    port: int = 0,
    host: str = "127.0.0.1",
    username: str = SANDBOX_USER,
    password: str = SANDBOX_PASSWORD,
    page_size: int = 2000,
    lock_rate: float = 0.0,
    latency_ms: float = 0.0,
    fault_rate: float = 0.0,
    session_ttl: float | None = None,
    rng_seed: int | None = None,
    background: bool = True,
) -> CrmSandboxHandle:
    faults = Faults(latency_ms, fault_rate, session_ttl, rng_seed)
    state = CrmSandbox(
        seed, username=username, password=password, page_size=page_size, lock_rate=lock_rate,
        faults=faults,
    )  # fmt: skip
    return CrmSandboxHandle.serve(state, render_fault, host=host, port=port, background=background)

"""CRM sandbox (Salesforce partner v58 style): login, upsert by external id into in-memory
records with per-row results, query/queryMore. Injects UNABLE_TO_LOCK_ROW on chosen rows."""

from __future__ import annotations

import hashlib
import itertools
import secrets
import threading
from collections import Counter
from collections.abc import Iterable
from typing import Any, Unpack

from lxml import etree  # lxml ships no stubs

from entity_sync_sandbox.crm_xml import TNS, query_page, render_fault, sobject_fields, upsert_result
from entity_sync_sandbox.query import QueryError, parse
from entity_sync_sandbox.seed import Seed, check_seed
from entity_sync_sandbox.server import (
    SANDBOX_PASSWORD,
    SANDBOX_USER,
    Faults,
    SandboxHandle,
    ServeOptions,
    SessionBook,
    faults_of,
)
from entity_sync_sandbox.soap import (
    XSI,
    Request,
    SoapFault,
    child_text,
    children,
    envelope,
)

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
        rows = [sobject_fields(o) for o in objects]
        counts = Counter(str(fields.get(ext_field)) for _, fields in rows)
        response = etree.Element(f"{{{TNS}}}upsertResponse", nsmap={None: TNS, "xsi": XSI})
        with self._lock:
            self.upsert_sizes.append(len(rows))
            for sobject_type, fields in rows:
                value = fields.get(ext_field)
                result = etree.SubElement(response, f"{{{TNS}}}result")
                error = self._row_error(ext_field, value, counts)
                if error is not None:
                    upsert_result(result, created=False, record_id=None, error=error)
                    continue
                record_id, created = self._upsert_row(sobject_type, ext_field, fields)
                upsert_result(result, created=created, record_id=record_id, error=None)
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
        return envelope(query_page(element, page, locator, total=len(rows)))


def _new_id(sobject_type: str, number: int) -> str:
    """18 characters like a CRM id: a 3-character prefix per type, then a counter."""
    prefix = "a" + hashlib.sha256(sobject_type.encode()).hexdigest()[:2]
    return f"{prefix}{number:012d}AAA"


class CrmSandboxHandle(SandboxHandle[CrmSandbox]):
    """A running CRM sandbox: the common controls plus `.lock_rows(...)`."""

    def lock_rows(self, external_ids: Iterable[str], times: int = 1) -> None:
        self.state.lock_rows(external_ids, times)


class CrmOptions(ServeOptions, total=False):
    lock_rate: float  # share of upserted rows refused with UNABLE_TO_LOCK_ROW


def start_crm_sandbox(seed: Seed | None = None, **options: Unpack[CrmOptions]) -> CrmSandboxHandle:
    state = CrmSandbox(
        seed,
        username=options.get("username", SANDBOX_USER),
        password=options.get("password", SANDBOX_PASSWORD),
        page_size=options.get("page_size", 2000),
        lock_rate=options.get("lock_rate", 0.0),
        faults=faults_of(options),
    )
    return CrmSandboxHandle.serve(state, render_fault, options)

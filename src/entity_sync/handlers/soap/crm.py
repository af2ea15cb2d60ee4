"""The CRM's partner SOAP API (Salesforce v58 style): login, upsert by external id in chunks
with per-row results, and query."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lxml import etree  # lxml ships no stubs

from entity_sync.handlers.observer import NULL_OBSERVER, SoapObserver
from entity_sync.handlers.soap.client import SoapClient
from entity_sync.handlers.soap.config import CrmSettings
from entity_sync.handlers.soap.errors import InvalidResponse

SOBJECT_NS = "urn:sobject.partner.soap.sforce.com"
LOCK_CODE = "UNABLE_TO_LOCK_ROW"


@dataclass(frozen=True)
class RowError:
    code: str
    message: str


@dataclass(frozen=True)
class UpsertRow:
    """The outcome of one record, in the order the records were given."""

    external_id: str
    success: bool
    created: bool
    id: str | None
    errors: tuple[RowError, ...] = ()


class CrmClient(SoapClient):
    service_name = "crm"
    namespace = "urn:partner.soap.sforce.com"

    def __init__(
        self,
        settings: CrmSettings,
        *,
        sleep: Callable[[float], None] = time.sleep,
        observer: SoapObserver = NULL_OBSERVER,
    ) -> None:
        super().__init__(settings, sleep=sleep, observer=observer)
        self._chunk_size = settings.chunk_size
        self._sobject = self._zeep.get_type(f"{{{SOBJECT_NS}}}sObject")

    def upsert(
        self,
        sobject_type: str,
        external_id_field: str,
        records: Sequence[Mapping[str, str | None]],
    ) -> list[UpsertRow]:
        """Upsert records (field -> text) in chunks; rows refused with UNABLE_TO_LOCK_ROW are
        upserted again, alone, with backoff."""
        rows: list[UpsertRow] = []
        for start in range(0, len(records), self._chunk_size):
            chunk = records[start : start + self._chunk_size]
            rows.extend(self._upsert_chunk(sobject_type, external_id_field, chunk))
        return rows

    def query(self, soql: str) -> list[dict[str, str | None]]:
        return list(self.iter_query(soql))

    def iter_query(self, soql: str) -> Iterator[dict[str, str | None]]:
        result = self.call("query", queryString=soql)
        while True:
            for record in result.records or ():
                yield _fields(record)
            if result.done:
                return
            if not result.queryLocator:
                raise InvalidResponse(
                    "crm query: done is false but there is no queryLocator", code="invalid_response"
                )
            result = self.call("queryMore", queryLocator=result.queryLocator)

    def _upsert_chunk(
        self, sobject_type: str, external_id_field: str, chunk: Sequence[Mapping[str, str | None]]
    ) -> list[UpsertRow]:
        rows = self._upsert_call(sobject_type, external_id_field, chunk)
        settings = self._settings
        for attempt in range(settings.max_retries):
            locked = [i for i, row in enumerate(rows) if _only_locked(row)]
            if not locked:
                break
            cap = min(settings.backoff_max_seconds, settings.backoff_seconds * 2**attempt)
            self._sleep(random.uniform(0, cap))
            again = self._upsert_call(sobject_type, external_id_field, [chunk[i] for i in locked])
            for i, row in zip(locked, again, strict=True):
                rows[i] = row
        return rows

    def _upsert_call(
        self, sobject_type: str, external_id_field: str, chunk: Sequence[Mapping[str, str | None]]
    ) -> list[UpsertRow]:
        objects = [self._build(sobject_type, record) for record in chunk]
        results = self.call("upsert", externalIDFieldName=external_id_field, sObjects=objects)
        results = list(results or ())
        if len(results) != len(chunk):
            raise InvalidResponse(
                f"crm upsert: {len(results)} results for {len(chunk)} records",
                code="invalid_response",
            )
        return [
            UpsertRow(
                external_id=str(record.get(external_id_field) or ""),
                success=bool(result.success),
                created=bool(result.created),
                id=result.id or None,
                errors=tuple(
                    RowError(code=str(e.statusCode), message=str(e.message))
                    for e in (result.errors or ())
                ),
            )
            for record, result in zip(chunk, results, strict=True)
        ]

    def _build(self, sobject_type: str, record: Mapping[str, str | None]) -> Any:
        fields = []
        for name, value in record.items():
            if value is None:
                continue
            element = etree.Element(etree.QName(SOBJECT_NS, name))
            element.text = value
            fields.append(element)
        return self._sobject(type=sobject_type, Id=None, _value_1=fields)

    def _parse_login(self, result: Any) -> tuple[str, str | None]:
        if result is None or not result.sessionId:
            raise InvalidResponse(
                "crm login: no sessionId in the response", code="invalid_response"
            )
        return str(result.sessionId), result.serverUrl or None

    def _session_header(self, token: str) -> list[Any]:
        return [self.element("SessionHeader")(sessionId=token)]


def _only_locked(row: UpsertRow) -> bool:
    return not row.success and bool(row.errors) and all(e.code == LOCK_CODE for e in row.errors)


def _fields(record: Any) -> dict[str, str | None]:
    """An sObject as {"type", "Id", field: text}; fields arrive as open (xs:any) elements."""
    data: dict[str, str | None] = {"type": record.type, "Id": record.Id}
    for element in getattr(record, "_value_1", None) or ():
        if isinstance(element, etree._Element):
            name = etree.QName(element).localname
            nil = element.get("{http://www.w3.org/2001/XMLSchema-instance}nil") == "true"
            data.setdefault(name, None if nil else (element.text or ""))
    return data

"""The billing system's SOAP API (Zuora a.79 style): login with an optional entity, and ZOQL
`query` paged with `queryMore` until done."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from zeep.helpers import serialize_object

from entity_sync.handlers.observer import NULL_OBSERVER, SoapObserver
from entity_sync.handlers.soap.client import SoapClient
from entity_sync.handlers.soap.config import BillingSettings
from entity_sync.handlers.soap.errors import InvalidResponse, SoapPermanentError

Record = dict[str, Any]


class BillingClient(SoapClient):
    """One tenant login (optionally into one entity of a multi-entity tenant)."""

    service_name = "billing"
    namespace = "http://api.zuora.com/"

    def __init__(
        self,
        settings: BillingSettings,
        *,
        entity: str | None = None,
        sleep: Callable[[float], None] = time.sleep,
        observer: SoapObserver = NULL_OBSERVER,
    ) -> None:
        super().__init__(settings, sleep=sleep, observer=observer)
        self._batch_size = settings.batch_size
        self.entity = entity
        if entity is not None and "entityName" not in self._login_elements():
            self.close()
            raise SoapPermanentError(
                f"cannot log in to billing entity {entity!r}: the login of WSDL "
                f"{settings.wsdl.name} has no entityId/entityName elements; use a WSDL whose "
                "login names the entity (the project's default WSDL does)",
                code="entity_login_unsupported",
            )

    def query(self, zoql: str) -> list[Record]:
        """All records of a ZOQL query, following queryMore until done."""
        return list(self.iter_query(zoql))

    def iter_query(self, zoql: str) -> Iterator[Record]:
        result = self.call("query", queryString=zoql)
        while True:
            for record in result.records or ():
                yield _plain(record)
            if result.done:
                return
            if not result.queryLocator:
                raise InvalidResponse(
                    "billing query: done is false but there is no queryLocator",
                    code="invalid_response",
                )
            result = self.call("queryMore", queryLocator=result.queryLocator)

    def _login_elements(self) -> set[str]:
        return {name for name, _ in self.element("login").type.elements}

    def _login_arguments(self) -> dict[str, Any]:
        arguments = super()._login_arguments()
        if self.entity is not None:
            arguments["entityName"] = self.entity
        return arguments

    def _parse_login(self, result: Any) -> tuple[str, str | None]:
        if result is None or not result.Session:
            raise InvalidResponse(
                "billing login: no Session in the response", code="invalid_response"
            )
        return str(result.Session), result.ServerUrl or None

    def _session_header(self, token: str) -> list[Any]:
        return [
            self.element("SessionHeader")(session=token),
            self.element("QueryOptions")(batchSize=self._batch_size),
        ]


def _plain(record: Any) -> Record:
    """A zeep record as a dict of the fields that have a value."""
    data = serialize_object(record, dict)
    return {k: v for k, v in data.items() if v is not None and k != "fieldsToNull"}

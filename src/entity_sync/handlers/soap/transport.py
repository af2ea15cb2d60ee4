"""zeep plumbing shared by both clients: hardened parsing, one parsed WSDL per path, one HTTP
session per client, and the translation of every failure into the project's error tree."""

from __future__ import annotations

import functools
import logging
import re
from pathlib import Path
from typing import Any

import requests
import zeep
from lxml import etree  # lxml ships no stubs
from requests.adapters import HTTPAdapter
from zeep import exceptions as zx
from zeep.transports import Transport
from zeep.wsdl import Document

from entity_sync.handlers.errors import ConfigurationError, EntitySyncError
from entity_sync.handlers.soap.errors import (
    InvalidResponse,
    SessionExpired,
    SoapPermanentError,
    SoapTransientError,
    UnsafeResponse,
)

# No DTDs, no entity declarations, no external references, no huge trees: a hostile or broken
# endpoint gets a clear error instead of XXE or entity expansion.
HARDENED = zeep.Settings(
    strict=True,
    forbid_dtd=True,
    forbid_entities=True,
    forbid_external=True,
    xml_huge_tree=False,
)

SESSION_CODES = frozenset({"INVALID_SESSION", "INVALID_SESSION_ID"})
TRANSIENT_CODES = frozenset(
    {
        "LOCK_COMPETITION",
        "TEMPORARY_ERROR",
        "SERVER_UNAVAILABLE",
        "REQUEST_EXCEEDED_RATE",
        "REQUEST_LIMIT_EXCEEDED",
        "TRANSACTION_TIMEOUT",
        "UNABLE_TO_LOCK_ROW",
        "Server",  # a SOAP 1.1 server fault with no vendor code
    }
)

# zeep logs whole envelopes (with the login password) at DEBUG on its transport logger; our
# transports log to this logger instead, which never passes DEBUG on.
_WIRE_LOGGER = logging.getLogger("entity_sync.handlers.soap.wire")
_WIRE_LOGGER.setLevel(logging.INFO)


@functools.cache
def load_wsdl(path: Path) -> Document:
    """Parse a WSDL once per process; clients share the read-only document."""
    if not path.is_file():
        raise ConfigurationError(f"WSDL file not found: {path}", reason="wsdl_not_found")
    try:
        return Document(str(path), Transport(), settings=HARDENED)  # type: ignore[arg-type]
    except (zx.Error, etree.XMLSyntaxError, OSError) as exc:
        raise ConfigurationError(
            f"WSDL {path} cannot be used: {exc}", reason="wsdl_invalid"
        ) from exc


class QuietTransport(Transport):
    """zeep's transport on our requests.Session, without envelope logging, with HTTP errors
    that are not SOAP (an HTML 500 page, a proxy's 502) turned into clear errors."""

    def __init__(self, session: requests.Session, *, connect: float, read: float) -> None:
        super().__init__(session=session, operation_timeout=(connect, read))
        self.logger = _WIRE_LOGGER

    def post(self, address: str, message: bytes, headers: dict[str, str]) -> requests.Response:
        try:
            response: requests.Response = super().post(address, message, headers)
        except requests.Timeout as exc:
            raise SoapTransientError(
                f"timed out talking to {_host(address)}", code="timeout"
            ) from exc
        except requests.ConnectionError as exc:
            raise SoapTransientError(
                f"cannot connect to {_host(address)}", code="connection_error"
            ) from exc
        status = response.status_code
        media = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if status != 200 and "xml" not in media:
            text = f"HTTP {status} ({media or 'no content type'}) from {_host(address)}, not SOAP"
            if status == 429 or status >= 500:
                raise SoapTransientError(text, code=f"http_{status}")
            raise InvalidResponse(text, code=f"http_{status}")
        return response


def new_http_session(pool_size: int = 32) -> requests.Session:
    """One session per client, so connections are kept alive and reused across calls."""
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=2, pool_maxsize=pool_size)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def bind_service(client: zeep.Client, address: str | None) -> Any:
    """The service proxy of the WSDL's first port, at `address` if given."""
    service = next(iter(client.wsdl.services.values()))
    port = next(iter(service.ports.values()))
    return client.create_service(port.binding.name, address or port.binding_options["address"])


def fault_code(fault: zx.Fault) -> str | None:
    """The vendor's code: FaultCode (billing) or exceptionCode (CRM) in the detail, else the
    local part of the SOAP faultcode."""
    detail = fault.detail
    if detail is not None:
        for element in detail.iter():
            if not isinstance(element.tag, str):
                continue
            if etree.QName(element).localname in ("FaultCode", "exceptionCode") and element.text:
                return str(element.text).strip()
    if fault.code:
        return str(fault.code).rsplit(":", 1)[-1].strip() or None
    return None


def translate(exc: Exception, *, where: str, secrets: tuple[str, ...] = ()) -> EntitySyncError:
    """Map a zeep/lxml/requests failure onto the error tree, with secrets scrubbed."""
    if isinstance(exc, EntitySyncError):
        return exc
    if isinstance(exc, zx.Fault):
        return _fault(exc, where=where, secrets=secrets)
    if isinstance(exc, zx.DTDForbidden | zx.EntitiesForbidden | zx.ExternalReferenceForbidden):
        return UnsafeResponse(
            f"{where}: response refused, it carries {type(exc).__name__.removesuffix('Forbidden')}"
            " declarations (DTDs, entities and external references are not accepted)",
            code="unsafe_response",
        )
    if isinstance(exc, zx.TransportError):
        status = exc.status_code or 0
        if status == 429 or status >= 500:
            return SoapTransientError(f"{where}: HTTP {status}, not SOAP", code=f"http_{status}")
        return InvalidResponse(
            f"{where}: HTTP {status}, response is not XML", code="invalid_response"
        )
    if isinstance(
        exc, zx.XMLSyntaxError | zx.XMLParseError | etree.XMLSyntaxError | zx.ValidationError
    ):
        return InvalidResponse(
            scrub(f"{where}: response is not the expected SOAP: {_first_line(str(exc))}", secrets),
            code="invalid_response",
        )
    if isinstance(exc, requests.RequestException):
        return SoapTransientError(f"{where}: {type(exc).__name__}", code="connection_error")
    if isinstance(exc, zx.Error):
        return SoapPermanentError(
            scrub(f"{where}: {_first_line(str(exc))}", secrets), code="soap_error"
        )
    raise exc


def _fault(exc: zx.Fault, *, where: str, secrets: tuple[str, ...]) -> EntitySyncError:
    """A SOAP fault: the vendor's code decides re-login, retry or a permanent failure."""
    code = fault_code(exc) or "UNKNOWN_FAULT"
    text = scrub(f"{where}: {code}: {exc.message}", secrets)
    if code in SESSION_CODES:
        return SessionExpired(text, code=code)
    if code in TRANSIENT_CODES:
        return SoapTransientError(text, code=code)
    return SoapPermanentError(text, code=code)


def scrub(text: str, secrets: tuple[str, ...]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def _first_line(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line[:300]


def _host(address: str) -> str:
    # Never the user-info part of a URL: it may hold credentials.
    match = re.match(r"^[a-z]+://(?:[^/@]*@)?([^/]+)", address)
    return match.group(1) if match else "endpoint"

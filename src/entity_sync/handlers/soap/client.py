"""What the billing and CRM clients share: lazy login, one re-login on an expired session,
retries of transient faults with exponential backoff and jitter, and no retry storm on a
failed login."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, Self

import structlog
import zeep
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_random_exponential

from entity_sync.handlers.observer import NULL_OBSERVER, SoapObserver, report_call
from entity_sync.handlers.soap.config import SoapSettings
from entity_sync.handlers.soap.errors import (
    LoginFailed,
    SessionExpired,
    SoapPermanentError,
    SoapTransientError,
)
from entity_sync.handlers.soap.transport import (
    HARDENED,
    QuietTransport,
    bind_service,
    load_wsdl,
    new_http_session,
    translate,
)

log = structlog.get_logger(__name__)


class SoapClient:
    """Base of BillingClient and CrmClient. Thread-safe: one instance serves a thread pool."""

    service_name = "soap"
    namespace = ""

    def __init__(
        self,
        settings: SoapSettings,
        *,
        sleep: Callable[[float], None] = time.sleep,
        observer: SoapObserver = NULL_OBSERVER,
    ) -> None:
        self._settings = settings
        self._sleep = sleep
        self._observer = observer
        self._http = new_http_session()
        self._transport = QuietTransport(
            self._http, connect=settings.connect_timeout, read=settings.read_timeout
        )
        self._zeep = zeep.Client(
            load_wsdl(settings.wsdl), transport=self._transport, settings=HARDENED
        )
        self._service = bind_service(self._zeep, settings.endpoint)
        self._lock = threading.RLock()
        self._token: str | None = None
        self._login_failure: tuple[float, LoginFailed] | None = None
        self._secrets = (settings.password.get_secret_value(),)

    # -- lifecycle -------------------------------------------------------------------------

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- session ---------------------------------------------------------------------------

    def ensure_login(self) -> str:
        """The current session token, logging in first if there is none."""
        with self._lock:
            current = self._token
            if current is not None:
                return current
            if self._login_failure is not None:
                failed_at, error = self._login_failure
                if time.monotonic() - failed_at < self._settings.login_failure_cooldown_seconds:
                    raise error
            try:
                token, server_url = self._retrying(self._login_once, what="login")
                assert isinstance(token, str)
            except LoginFailed as exc:
                self._login_failure = (time.monotonic(), exc)
                raise
            self._login_failure = None
            if server_url and not self._settings.endpoint:
                self._service = bind_service(self._zeep, server_url)
            self._token = token
            log.debug("soap.login", service=self.service_name, user=self._settings.username)
            return token

    def _relogin(self, stale: str) -> str:
        with self._lock:
            if self._token == stale:  # else another thread already logged in again
                self._token = None
            return self.ensure_login()

    def _login_once(self) -> tuple[str, str | None]:
        started = time.perf_counter()
        try:
            result = self._service.login(**self._login_arguments())
        except Exception as exc:  # noqa: BLE001 - translated into the error tree
            self._report("login", started, ok=False)
            error = translate(exc, where=f"{self.service_name} login", secrets=self._secrets)
            if isinstance(error, SoapPermanentError):
                raise LoginFailed(
                    f"{self.service_name} login as {self._settings.username!r} failed: "
                    f"{error.message.split(': ', 1)[-1]}",
                    code=error.code,
                ) from None
            raise error from None
        self._report("login", started, ok=True)
        return self._parse_login(result)

    def _login_arguments(self) -> dict[str, Any]:
        return {
            "username": self._settings.username,
            "password": self._settings.password.get_secret_value(),
        }

    def _parse_login(self, result: Any) -> tuple[str, str | None]:
        raise NotImplementedError

    def _session_header(self, token: str) -> list[Any]:
        raise NotImplementedError

    # -- calls -----------------------------------------------------------------------------

    def call(self, operation: str, **arguments: Any) -> Any:
        """Call an operation with the session header: transient faults are retried with
        backoff, an expired session is renewed once."""
        return self._retrying(lambda: self._call_once(operation, arguments), what=operation)

    def _call_once(self, operation: str, arguments: dict[str, Any]) -> Any:
        token = self.ensure_login()
        try:
            return self._invoke(operation, token, arguments)
        except SessionExpired:
            token = self._relogin(token)
        try:
            return self._invoke(operation, token, arguments)
        except SessionExpired as exc:
            raise SoapPermanentError(
                f"{self.service_name} {operation}: session refused right after a fresh login",
                code=exc.code,
            ) from None

    def _invoke(self, operation: str, token: str, arguments: dict[str, Any]) -> Any:
        where = f"{self.service_name} {operation}"
        started = time.perf_counter()
        try:
            response = getattr(self._service, operation)(
                **arguments, _soapheaders=self._session_header(token)
            )
        except Exception as exc:  # noqa: BLE001 - translated into the error tree
            self._report(operation, started, ok=False)
            raise translate(exc, where=where, secrets=self._secrets) from None
        self._report(operation, started, ok=True)
        return unwrap(response)

    def _report(self, operation: str, started: float, *, ok: bool) -> None:
        seconds = time.perf_counter() - started
        report_call(self._observer, self.service_name, operation, seconds, ok)

    def _retrying(self, fn: Callable[[], Any], *, what: str) -> Any:
        settings = self._settings
        retrying = Retrying(
            stop=stop_after_attempt(settings.max_retries + 1),
            wait=wait_random_exponential(
                multiplier=settings.backoff_seconds, max=settings.backoff_max_seconds
            ),
            retry=retry_if_exception_type(SoapTransientError),
            sleep=self._sleep,
            reraise=True,
        )
        try:
            return retrying(fn)
        except SoapTransientError as exc:
            attempts = retrying.statistics.get("attempt_number", 1)
            raise SoapTransientError(
                f"{exc.message} (gave up after {attempts} attempts)", code=exc.code
            ) from None

    def element(self, name: str) -> Any:
        """A global element of the service namespace, e.g. SessionHeader."""
        return self._zeep.get_element(f"{{{self.namespace}}}{name}")


def unwrap(response: Any) -> Any:
    """The operation's `result`, whatever the WSDL declares around it. A WSDL with output
    headers (the vendor CRM's LimitInfoHeader) makes zeep return {header, body}; one without
    makes it return the unwrapped result."""
    body = _get(response, "body") if _get(response, "header", _MISSING) is not _MISSING else None
    if body is not None:
        response = body
        result = _get(response, "result", _MISSING)
        if result is not _MISSING:
            return result
    return response


_MISSING = object()


def _get(value: Any, key: str, default: Any = None) -> Any:
    try:
        return value[key]
    except (KeyError, TypeError, IndexError, AttributeError):
        return default

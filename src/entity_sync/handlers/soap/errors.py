"""SOAP failures mapped onto the project's error tree (src/entity_sync/handlers/errors.py).

`code` is the vendor's code (e.g. `INVALID_LOGIN`, `UNABLE_TO_LOCK_ROW`) or one of ours
(`http_503`, `timeout`, `unsafe_response`, ...), so results can keep it per record.
"""

from __future__ import annotations

from entity_sync.handlers.errors import PermanentError, TransientError


class SoapTransientError(TransientError):
    """May succeed on a later attempt: retried with backoff by the clients."""

    reason = "soap_transient"

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message, reason=code)
        self.code = code


class SoapPermanentError(PermanentError):
    """Will fail the same way again: never retried."""

    reason = "soap_permanent"

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message, reason=code)
        self.code = code


class LoginFailed(SoapPermanentError):
    """Wrong credentials, locked user, unknown entity: one clear error, no retry storm.
    `reason` is `login_failed`; `code` keeps the vendor's code."""

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message, code=code)
        self.reason = "login_failed"


class UnsafeResponse(SoapPermanentError):
    """The response carried a DTD, entity declarations or external references."""


class InvalidResponse(SoapPermanentError):
    """The response was not the SOAP the WSDL describes (not XML, wrong envelope)."""


class SessionExpired(SoapTransientError):
    """INVALID_SESSION / INVALID_SESSION_ID: the clients log in again once and repeat the call."""

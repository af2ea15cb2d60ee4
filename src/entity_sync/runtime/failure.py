"""Why one delivery failed, typed: the reason code, the message and the exception's class.

The error tree (handlers/errors.py) decides: a `PermanentError` or a row the database refuses
is dead-lettered at once; every other failure is retried. The class travels with the failure to
the `x-exception-type` header, so nothing is parsed back out of text.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from entity_sync.handlers.errors import EntitySyncError, PermanentError


@dataclass(frozen=True, slots=True)
class Failure:
    reason: str
    message: str
    permanent: bool
    error_type: type[BaseException]

    @property
    def exception_type(self) -> str:
        """The class name, as the `x-exception-type` header carries it."""
        return self.error_type.__name__

    @classmethod
    def of(cls, exc: BaseException) -> Failure:
        """By the error tree: permanent errors and refused rows dead-letter now, the rest retry."""
        kind = type(exc)
        if isinstance(exc, PermanentError):
            return cls(exc.reason, exc.message, True, kind)
        if isinstance(exc, EntitySyncError):
            return cls(exc.reason, exc.message, False, kind)
        text = str(exc).splitlines()[0][:500] if str(exc) else kind.__name__
        if isinstance(exc, sa.exc.DBAPIError):  # the database refuses this row: it never will
            return cls("storage_rejected", text, True, kind)
        return cls("unexpected_error", f"{kind.__name__}: {text}", False, kind)

"""The error tree. The acknowledgement policy is a type check on these classes.

Permanent errors never succeed on retry: the message is dead-lettered at once. Transient errors
may succeed later: the message is retried with growing delays, then dead-lettered.
"""

from __future__ import annotations


class EntitySyncError(Exception):
    """Base of every error the project raises on purpose."""

    reason: str = "error"

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if reason is not None:
            self.reason = reason


class PermanentError(EntitySyncError):
    """The message can never succeed: dead-letter it now."""

    reason = "permanent_error"


class InvalidMessage(PermanentError):
    """Undecodable or schema-invalid input."""

    reason = "schema_invalid"


class Rejected(PermanentError):
    """A sharing rule refuses the event (docs/design.md §4); nothing was changed."""

    reason = "rejected"


class TransientError(EntitySyncError):
    """May succeed later (a dependency is down, or a referenced object is not known yet)."""

    reason = "transient_error"


class RetryLater(TransientError):
    """A rule needs something that has not arrived yet, e.g. the parent of a rate plan."""

    reason = "retry_later"


class ConfigurationError(EntitySyncError):
    """Settings are missing or inconsistent; raised at start-up, never per message."""

    reason = "configuration_error"

"""A timing hook for SOAP calls: metrics subscribe here; the clients only report.

Each network round trip of a client (login and every operation attempt, retries included)
reports `(service, operation, seconds, ok)`. A subscriber that raises is logged and ignored, so
observing never changes what a client does.
"""

from __future__ import annotations

from collections.abc import Callable

from entity_sync.handlers.hooks import Hooks

_calls: Hooks[[str, str, float, bool]] = Hooks("soap timing")


def subscribe(observer: Callable[[str, str, float, bool], None]) -> Callable[[], None]:
    """Report every SOAP call (service, operation, seconds, ok) to `observer`; returns the
    function that unsubscribes it."""
    return _calls.subscribe(observer)


def report(service: str, operation: str, seconds: float, ok: bool) -> None:
    _calls.emit(service, operation, seconds, ok)

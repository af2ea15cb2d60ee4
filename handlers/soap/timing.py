"""A timing hook for SOAP calls: metrics subscribe here; the clients only report.

Each network round trip of a client (login and every operation attempt, retries included)
reports `(service, operation, seconds, ok)`. A subscriber that raises is logged and ignored, so
observing never changes what a client does.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import structlog

log = structlog.get_logger(__name__)

CallObserver = Callable[[str, str, float, bool], None]

_lock = threading.Lock()
_observers: tuple[CallObserver, ...] = ()


def subscribe(observer: CallObserver) -> Callable[[], None]:
    """Report every SOAP call to `observer`; returns the function that unsubscribes it."""
    global _observers
    with _lock:
        _observers = (*_observers, observer)

    def unsubscribe() -> None:
        global _observers
        with _lock:
            _observers = tuple(o for o in _observers if o is not observer)

    return unsubscribe


def report(service: str, operation: str, seconds: float, ok: bool) -> None:
    for observer in _observers:
        try:
            observer(service, operation, seconds, ok)
        except Exception:  # an observer must never break a SOAP call
            log.warning("soap timing observer failed", exc_info=True)

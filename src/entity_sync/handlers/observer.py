"""What the SOAP clients and the sync service report as they run: metrics implement this.

The observer is passed in where the clients and the service are built (bootstrap), never looked
up in a module-global registry; the default does nothing. A report that raises is logged and
ignored, so observing never changes what a client or the service does.
"""

from __future__ import annotations

from typing import Protocol

import structlog

log = structlog.get_logger(__name__)


class SoapObserver(Protocol):
    def soap_call(self, service: str, operation: str, seconds: float, ok: bool) -> None:
        """One network round trip of a client: login or one operation attempt (retries each
        count), `ok` false when it raised."""


class SyncObserver(SoapObserver, Protocol):
    def sync_session(self, status: str) -> None:
        """A sync session completed with this `sync.completed` status."""


class NullSyncObserver:
    def soap_call(self, service: str, operation: str, seconds: float, ok: bool) -> None:
        return None

    def sync_session(self, status: str) -> None:
        return None


NULL_OBSERVER = NullSyncObserver()


def report_call(
    observer: SoapObserver, service: str, operation: str, seconds: float, ok: bool
) -> None:
    try:
        observer.soap_call(service, operation, seconds, ok)
    except Exception:
        log.warning("observer failed", report="soap_call", exc_info=True)


def report_session(observer: SyncObserver, status: str) -> None:
    try:
        observer.sync_session(status)
    except Exception:
        log.warning("observer failed", report="sync_session", exc_info=True)

"""SyncService: the sync engine wired to real SOAP clients built from settings. The worker
creates one per process and calls `handle(request)` per sync request."""

from __future__ import annotations

import threading
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

import structlog

from entity_sync.handlers.observer import NULL_OBSERVER, SyncObserver, report_session
from entity_sync.handlers.soap.billing import BillingClient
from entity_sync.handlers.soap.config import BillingSettings, CrmSettings
from entity_sync.handlers.soap.crm import CrmClient
from entity_sync.handlers.sync.engine import SyncDeps, run_sync
from entity_sync.handlers.sync.ports import BillingApi, SyncLocks, SyncStore
from entity_sync.schemas.inputs import SyncRequest

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class SyncLimits:
    """How many ids of one request sync at once, and how long a crashed worker's lock holds."""

    max_workers: int = 4
    lock_ttl_seconds: float = 900.0


class SyncService:
    """Holds one CRM client and one billing client per entity (created on first use, so no
    connection is opened before the first request). Thread-safe."""

    def __init__(
        self,
        billing: BillingSettings,
        crm: CrmSettings,
        *,
        locks: SyncLocks,
        store: SyncStore,
        limits: SyncLimits = SyncLimits(),
        observer: SyncObserver = NULL_OBSERVER,
    ) -> None:
        self._billing_settings = billing
        self._crm_settings = crm
        self._locks = locks
        self._store = store
        self._limits = limits
        self._observer = observer  # session statuses here, call timings in the clients
        self._lock = threading.Lock()
        self._billing: dict[str | None, BillingClient] = {}
        self._crm: CrmClient | None = None

    def handle(self, req: SyncRequest, *, known_entities: Collection[str] = ()) -> dict[str, Any]:
        """The `sync.completed` body (see run_sync)."""
        deps = SyncDeps(
            billing=self._billing_for,
            crm=self._crm_client(),
            locks=self._locks,
            store=self._store,
            max_workers=self._limits.max_workers,
            lock_ttl_seconds=self._limits.lock_ttl_seconds,
        )
        completed = run_sync(req, deps, known_entities=known_entities)
        report_session(self._observer, str(completed["status"]))
        return completed

    def close(self) -> None:
        with self._lock:
            for client in self._billing.values():
                client.close()
            self._billing.clear()
            if self._crm is not None:
                self._crm.close()
                self._crm = None

    def _billing_for(self, entity: str | None) -> BillingApi:
        with self._lock:
            client = self._billing.get(entity)
            if client is None:
                client = BillingClient(
                    self._billing_settings, entity=entity, observer=self._observer
                )
                self._billing[entity] = client
            return client

    def _crm_client(self) -> CrmClient:
        with self._lock:
            if self._crm is None:
                self._crm = CrmClient(self._crm_settings, observer=self._observer)
            return self._crm

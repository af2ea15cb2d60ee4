"""What the sync engine needs from its surroundings, as protocols: the SOAP clients, one sync
per object at a time (SyncLocks), and where sessions are kept (SyncStore)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from entity_sync.handlers.soap.crm import UpsertRow
from entity_sync.schemas.inputs import SyncRequest


class BillingApi(Protocol):
    def ensure_login(self) -> str: ...

    def query(self, zoql: str) -> list[dict[str, Any]]: ...


class CrmApi(Protocol):
    def ensure_login(self) -> str: ...

    def upsert(
        self,
        sobject_type: str,
        external_id_field: str,
        records: Sequence[Mapping[str, str | None]],
    ) -> list[UpsertRow]: ...

    def query(self, soql: str) -> list[dict[str, str | None]]: ...


class SyncLocks(Protocol):
    """At most one sync per key (`billing_account:<id>` / `product:<id>`; the billing accounts
    of a CRM account use the former) at a time, across workers. A lock not released within
    `ttl_seconds` (a crashed worker) may be taken again."""

    def try_acquire(self, key: str, *, ttl_seconds: float) -> bool: ...

    def release(self, key: str) -> None: ...


class SyncStore(Protocol):
    """Keeps each session (the `sync.completed` body, which holds the per-id results)."""

    def save(self, completed: Mapping[str, Any], *, request: SyncRequest) -> None: ...

    def recent(self, limit: int = 20) -> list[dict[str, Any]]: ...

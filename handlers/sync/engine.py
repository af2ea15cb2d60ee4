"""One sync request end to end: validate, log in per entity, check the entity's CRM record,
sync every id concurrently in a bounded pool (one sync per id at a time), store the session
and return the `sync.completed` body (schemas/outputs.py SyncCompleted)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Collection
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import structlog

from handlers.errors import EntitySyncError
from handlers.sync.accounts import sync_account
from handlers.sync.ports import BillingApi, CrmApi, SyncLocks, SyncStore
from handlers.sync.products import sync_product
from handlers.sync.validate import Rejection, validate_request
from handlers.sync.writer import Outcome
from handlers.sync.zoql import quote
from schemas.inputs import SyncRequest

log = structlog.get_logger(__name__)

BILLING_ENTITY_OBJECT = "zqu__BillingEntity__c"


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass
class SyncDeps:
    """Everything a sync needs. `billing(entity)` gives the client logged in to that entity
    (None: the tenant without naming an entity); it may raise a PermanentError."""

    billing: Callable[[str | None], BillingApi]
    crm: CrmApi
    locks: SyncLocks
    store: SyncStore
    max_workers: int = 4
    lock_ttl_seconds: float = 900.0
    clock: Callable[[], dt.datetime] = _utcnow


def run_sync(
    req: SyncRequest, deps: SyncDeps, *, known_entities: Collection[str] = ()
) -> dict[str, Any]:
    """The `sync.completed` body for this request; never raises for bad input or per-id
    failures (they are in the results). The session is saved in `deps.store`."""
    started = deps.clock()
    checked = validate_request(req, known_entities=known_entities)
    if isinstance(checked, Rejection):
        completed = _completed(req, "rejected", [], started, deps.clock(), checked.reason)
    else:
        results = _sync_ids(req, checked, deps)
        completed = _completed(req, _status(results), results, started, deps.clock(), None)
    deps.store.save(completed, request=req)
    log.info(
        "sync.completed",
        request_id=str(req.request_id),
        status=completed["status"],
        ids=len(req.zuora_ids),
    )
    return completed


def _sync_ids(req: SyncRequest, ids: list[str], deps: SyncDeps) -> list[dict[str, Any]]:
    entity_of = {k.lower(): v for k, v in (req.entity_by_id or {}).items()}
    results: dict[str, dict[str, Any]] = {}
    runnable: list[tuple[str, BillingApi]] = []
    for entity in dict.fromkeys(entity_of.get(i.lower()) for i in ids):
        members = [i for i in ids if entity_of.get(i.lower()) == entity]
        try:
            billing = _prepare_entity(entity, deps)
        except EntitySyncError as exc:  # login or entity check failed: each id says why
            for zuora_id in members:
                results[zuora_id] = _result(zuora_id, "failed", error=(exc.reason, exc.message))
            continue
        runnable.extend((zuora_id, billing) for zuora_id in members)
    if runnable:
        workers = max(1, min(deps.max_workers, len(runnable)))
        with ThreadPoolExecutor(workers, thread_name_prefix="sync") as pool:
            futures = {
                zuora_id: pool.submit(_sync_one, req.object_type, zuora_id, billing, deps)
                for zuora_id, billing in runnable
            }
            for zuora_id, future in futures.items():
                results[zuora_id] = future.result()
    return [results[zuora_id] for zuora_id in ids]


def _prepare_entity(entity: str | None, deps: SyncDeps) -> BillingApi:
    """Log in once up front, so bad credentials give one clear error and no call storm."""
    billing = deps.billing(entity)
    billing.ensure_login()
    deps.crm.ensure_login()
    if entity is not None:
        soql = f"select Id, Name from {BILLING_ENTITY_OBJECT} where Name = {quote(entity)}"
        if not deps.crm.query(soql):
            raise EntitySyncError(
                f"the CRM has no {BILLING_ENTITY_OBJECT} record named {entity!r}",
                reason="billing_entity_missing",
            )
    return billing


def _sync_one(
    object_type: str, zuora_id: str, billing: BillingApi, deps: SyncDeps
) -> dict[str, Any]:
    key = f"{object_type}:{zuora_id.lower()}"
    if not deps.locks.try_acquire(key, ttl_seconds=deps.lock_ttl_seconds):
        return _result(
            zuora_id, "skipped", error=("already_syncing", f"{zuora_id} is already being synced")
        )
    try:
        sync = sync_account if object_type == "billing_account" else sync_product
        root_synced, outcome = sync(billing, deps.crm, zuora_id)
        return _result(zuora_id, "synced" if root_synced else "failed", outcome=outcome)
    except EntitySyncError as exc:
        return _result(zuora_id, "failed", error=(exc.reason, exc.message))
    except Exception as exc:  # one broken id must not lose the other results
        log.exception("sync.unexpected_error", zuora_id=zuora_id)
        return _result(zuora_id, "failed", error=("internal_error", type(exc).__name__))
    finally:
        deps.locks.release(key)


def _result(
    zuora_id: str,
    status: str,
    *,
    outcome: Outcome | None = None,
    error: tuple[str, str] | None = None,
) -> dict[str, Any]:
    outcome = outcome or Outcome()
    errors = list(outcome.errors)
    if error is not None:
        errors.insert(
            0, {"code": error[0], "message": error[1], "object": None, "zuora_id": zuora_id}
        )
    return {
        "zuora_id": zuora_id,
        "status": status,
        "counts": dict(outcome.counts),
        "errors": errors,
    }


def _status(results: list[dict[str, Any]]) -> str:
    if all(r["status"] == "failed" for r in results):
        return "failed"
    if all(r["status"] == "synced" and not r["errors"] for r in results):
        return "finished"
    return "finished_with_errors"


def _completed(
    req: SyncRequest,
    status: str,
    results: list[dict[str, Any]],
    started: dt.datetime,
    finished: dt.datetime,
    reason: str | None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "request_id": str(req.request_id),
        "status": status,
        "results": results,
        "started_at": started.isoformat().replace("+00:00", "Z"),
        "finished_at": finished.isoformat().replace("+00:00", "Z"),
    }
    if reason is not None:
        body["reason"] = reason
    return body

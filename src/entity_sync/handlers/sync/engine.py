"""One sync request end to end: validate, plan (for crm_account: find the billing accounts),
log in per entity, check the entity's CRM record, sync every target concurrently in a bounded
pool (one sync per object at a time), store the session and return the `sync.completed` body
(src/entity_sync/schemas/outputs.py SyncCompleted)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Collection
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import structlog

from entity_sync.handlers.errors import EntitySyncError
from entity_sync.handlers.sync.accounts import sync_account
from entity_sync.handlers.sync.plan import Target, plan_request
from entity_sync.handlers.sync.ports import BillingApi, CrmApi, SyncLocks, SyncStore
from entity_sync.handlers.sync.products import sync_product
from entity_sync.handlers.sync.results import completed, result, session_status
from entity_sync.handlers.sync.validate import Rejection, validate_request
from entity_sync.handlers.sync.zoql import quote
from entity_sync.schemas.inputs import SyncRequest

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
    plan = checked if isinstance(checked, Rejection) else plan_request(req, checked, deps.billing)
    if isinstance(plan, Rejection):
        body = completed(req, "rejected", [], started, deps.clock(), plan.reason)
    else:
        # A CRM account's billing accounts sync (and lock) as billing accounts.
        kind = "billing_account" if req.object_type == "crm_account" else req.object_type
        results = plan.results(_sync_targets(kind, plan.targets, deps))
        body = completed(req, session_status(results), results, started, deps.clock(), None)
    deps.store.save(body, request=req)
    log.info(
        "sync.completed", request_id=str(req.request_id), status=body["status"], ids=len(req.ids)
    )
    return body


def _sync_targets(kind: str, targets: list[Target], deps: SyncDeps) -> list[dict[str, Any]]:
    """One result per target, in target order."""
    results: dict[int, dict[str, Any]] = {}
    runnable: list[tuple[int, BillingApi]] = []
    for entity in dict.fromkeys(t.entity for t in targets):
        members = [i for i, t in enumerate(targets) if t.entity == entity]
        try:
            billing = _prepare_entity(entity, deps)
        except EntitySyncError as exc:  # login or entity check failed: each target says why
            for i in members:
                results[i] = _result(targets[i], "failed", error=(exc.reason, exc.message))
            continue
        runnable.extend((i, billing) for i in members)
    if runnable:
        workers = max(1, min(deps.max_workers, len(runnable)))
        with ThreadPoolExecutor(workers, thread_name_prefix="sync") as pool:
            futures: dict[int, Future[dict[str, Any]]] = {
                i: pool.submit(_sync_one, kind, targets[i], billing, deps)
                for i, billing in runnable
            }
            results.update((i, future.result()) for i, future in futures.items())
    return [results[i] for i in range(len(targets))]


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


def _sync_one(kind: str, target: Target, billing: BillingApi, deps: SyncDeps) -> dict[str, Any]:
    zuora_id = target.zuora_id
    key = f"{kind}:{zuora_id.lower()}"
    if not deps.locks.try_acquire(key, ttl_seconds=deps.lock_ttl_seconds):
        return _result(
            target, "skipped", error=("already_syncing", f"{zuora_id} is already being synced")
        )
    try:
        sync = sync_account if kind == "billing_account" else sync_product
        root_synced, outcome = sync(billing, deps.crm, zuora_id)
        return _result(target, "synced" if root_synced else "failed", outcome=outcome)
    except EntitySyncError as exc:
        return _result(target, "failed", error=(exc.reason, exc.message))
    except Exception as exc:  # one broken id must not lose the other results
        log.exception("sync.unexpected_error", zuora_id=zuora_id)
        return _result(target, "failed", error=("internal_error", type(exc).__name__))
    finally:
        deps.locks.release(key)


def _result(target: Target, status: str, **details: Any) -> dict[str, Any]:
    return result(target.zuora_id, status, crm_account_id=target.crm_account_id, **details)

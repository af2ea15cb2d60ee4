"""What a valid request syncs: its ids, or for crm_account the billing accounts whose `CrmId`
is one of the requested CRM accounts, looked up in every entity the request names (or in the
default entity). The per-request limit then applies to the billing accounts found."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from entity_sync.handlers.errors import EntitySyncError
from entity_sync.handlers.sync.ports import BillingApi
from entity_sync.handlers.sync.resolve import billing_accounts_of
from entity_sync.handlers.sync.results import result
from entity_sync.handlers.sync.validate import MAX_IDS, Rejection
from entity_sync.schemas.inputs import SyncRequest

Result = dict[str, Any]


@dataclass(frozen=True)
class Target:
    """One object to sync, the entity to read it from, the CRM account that led to it."""

    zuora_id: str
    entity: str | None
    crm_account_id: str | None = None


@dataclass
class Plan:
    targets: list[Target]
    # crm_account only: per CRM account, results naming no billing account (lookup failed,
    # or none found), in request order.
    unresolved: dict[str, list[Result]] = field(default_factory=dict)

    def results(self, synced: list[Result]) -> list[Result]:
        """The request's results: `synced` (one per target, in target order), and for
        crm_account each CRM account's results together, in request order."""
        if not self.unresolved:
            return synced
        grouped: dict[str, list[Result]] = {c: [] for c in self.unresolved}
        for target, one in zip(self.targets, synced, strict=True):
            grouped[str(target.crm_account_id)].append(one)
        return [r for c, own in grouped.items() for r in (*own, *self.unresolved[c])]


def plan_request(
    req: SyncRequest, ids: list[str], billing: Callable[[str | None], BillingApi]
) -> Plan | Rejection:
    if req.object_type != "crm_account":
        entity_of = {k.lower(): v for k, v in (req.entity_by_id or {}).items()}
        return Plan([Target(i, entity_of.get(i.lower())) for i in ids])
    return _crm_accounts(req, ids, billing)


def _crm_accounts(
    req: SyncRequest, ids: list[str], billing: Callable[[str | None], BillingApi]
) -> Plan | Rejection:
    entities: list[str | None] = [*dict.fromkeys((req.entity_by_id or {}).values())] or [None]
    found: dict[str, list[Target]] = {c: [] for c in ids}
    unresolved: dict[str, list[Result]] = {c: [] for c in ids}
    for entity in entities:
        try:
            client = billing(entity)
            client.ensure_login()  # bad credentials: one clear error, no call storm
            accounts = billing_accounts_of(client, ids)
        except EntitySyncError as exc:  # this entity cannot be searched: each CRM account says so
            for c in ids:
                message = f"cannot look up the billing accounts in {_where(entity)}: {exc.message}"
                unresolved[c].append(
                    result(None, "failed", error=(exc.reason, message), crm_account_id=c)
                )
            continue
        for c, account_ids in accounts.items():
            found[c].extend(Target(a, entity, c) for a in account_ids)
    count, limit = sum(len(t) for t in found.values()), MAX_IDS[req.origin]
    if count > limit:  # before anything is written
        return Rejection(
            f"too_many_billing_accounts: {count} billing accounts found for {len(ids)} CRM "
            f"accounts, origin {req.origin} allows at most {limit}"
        )
    searched = ", ".join(_where(e) for e in entities)
    for c in ids:
        if not found[c] and not unresolved[c]:
            message = f"no billing account has CrmId {c} (searched {searched})"
            unresolved[c].append(
                result(None, "skipped", error=("no_billing_accounts", message), crm_account_id=c)
            )
    return Plan([t for c in ids for t in found[c]], unresolved)


def _where(entity: str | None) -> str:
    return "the default entity" if entity is None else f"entity {entity!r}"

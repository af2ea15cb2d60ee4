"""Checks of a sync request that the schema leaves to the handler (docs/design.md §5.3). An invalid
request is answered with status `rejected` and the reason, never with an exception."""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from dataclasses import dataclass

from entity_sync.handlers.sync import crm_ids
from entity_sync.schemas.inputs import IDS_OF, SyncRequest

ZUORA_ID = re.compile(r"^[0-9a-fA-F]{32}$")
MAX_IDS = {"api": 10, "ui": 8}


@dataclass(frozen=True)
class Rejection:
    reason: str  # "<code>: <human text>"


@dataclass(frozen=True)
class _IdRule:
    valid: Callable[[str], bool]
    what: str  # what a valid id is, for the rejection
    key: Callable[[str], str]  # two ids with one key name the same object


_ZUORA = _IdRule(lambda i: ZUORA_ID.match(i) is not None, "32 hex characters", str.lower)
_CRM = _IdRule(
    crm_ids.is_crm_account_id,
    "a CRM account id (15 or 18 letters and digits)",
    crm_ids.core,  # 15 characters, case-sensitive: the 18-character spelling adds a checksum
)


def validate_request(req: SyncRequest, *, known_entities: Collection[str]) -> list[str] | Rejection:
    """The ids to sync (or, for crm_account, to look up), in request order, or why the request
    is rejected. For crm_account the limit applies again to the billing accounts found."""
    ids = req.ids
    rule = _CRM if req.object_type == "crm_account" else _ZUORA
    limit = MAX_IDS[req.origin]
    if not ids:
        return Rejection(f"no_ids: {IDS_OF[req.object_type]} is empty")
    if len(ids) > limit:
        return Rejection(
            f"too_many_ids: {len(ids)} ids, origin {req.origin} allows at most {limit}"
        )
    for one in ids:
        if not rule.valid(one):
            return Rejection(f"malformed_id: {_show(one)} is not {rule.what}")
    seen: set[str] = set()
    for one in ids:
        if rule.key(one) in seen:
            return Rejection(f"duplicate_id: {one} appears more than once")
        seen.add(rule.key(one))
    for named, entity in (req.entity_by_id or {}).items():
        if not rule.valid(named) or rule.key(named) not in seen:
            return Rejection(f"unknown_id: entity_by_id names {_show(named)}, not requested")
        if entity not in known_entities:
            return Rejection(f"unknown_entity: {_show(entity)} is not a known entity")
    return ids


def _show(text: str) -> str:
    return repr(text[:64] + ("..." if len(text) > 64 else ""))

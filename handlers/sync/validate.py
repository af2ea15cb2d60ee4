"""Checks of a sync request that the schema leaves to the handler (DESIGN.md §5.3). An invalid
request is answered with status `rejected` and the reason, never with an exception."""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass

from schemas.inputs import SyncRequest

ZUORA_ID = re.compile(r"^[0-9a-fA-F]{32}$")
MAX_IDS = {"api": 10, "ui": 8}


@dataclass(frozen=True)
class Rejection:
    reason: str  # "<code>: <human text>"


def validate_request(req: SyncRequest, *, known_entities: Collection[str]) -> list[str] | Rejection:
    """The ids to sync, in request order, or why the request is rejected."""
    ids = list(req.zuora_ids)
    limit = MAX_IDS[req.origin]
    if not ids:
        return Rejection("no_ids: zuora_ids is empty")
    if len(ids) > limit:
        return Rejection(
            f"too_many_ids: {len(ids)} ids, origin {req.origin} allows at most {limit}"
        )
    for zuora_id in ids:
        if not ZUORA_ID.match(zuora_id):
            return Rejection(f"malformed_id: {_show(zuora_id)} is not 32 hex characters")
    seen: set[str] = set()
    for zuora_id in ids:
        if zuora_id.lower() in seen:
            return Rejection(f"duplicate_id: {zuora_id} appears more than once")
        seen.add(zuora_id.lower())
    for zuora_id, entity in (req.entity_by_id or {}).items():
        if zuora_id.lower() not in seen:
            return Rejection(f"unknown_id: entity_by_id names {_show(zuora_id)}, not requested")
        if entity not in known_entities:
            return Rejection(f"unknown_entity: {_show(entity)} is not a known entity")
    return ids


def _show(text: str) -> str:
    return repr(text[:64] + ("..." if len(text) > 64 else ""))

"""Upserts mapped records into the CRM and keeps the per-object counts and per-record errors
of one synced object (account or product)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from entity_sync.handlers.errors import EntitySyncError
from entity_sync.handlers.sync.mapping import MappingError
from entity_sync.handlers.sync.ports import CrmApi

Prepared = tuple[str, dict[str, str] | MappingError]  # (billing id, fields or why not)
# CRM link field -> (parent kind, parent billing id -> CRM id, this record's parent billing id)
Parents = Mapping[str, tuple[str, Mapping[str, str], str | None]]


@dataclass
class Outcome:
    """Counts of records upserted per CRM object, and every error with its code."""

    counts: dict[str, int] = field(default_factory=dict)
    errors: list[dict[str, Any]] = field(default_factory=list)

    def fail(self, code: str, message: str, *, obj: str | None, zuora_id: str | None) -> None:
        self.errors.append({"code": code, "message": message, "object": obj, "zuora_id": zuora_id})


class Writer:
    def __init__(self, crm: CrmApi, external_id_field: str) -> None:
        self._crm = crm
        self._external_id = external_id_field
        self.outcome = Outcome()

    def upsert(self, crm_object: str, prepared: Sequence[Prepared]) -> dict[str, str]:
        """Upsert; returns billing id -> CRM id of the records that made it."""
        self.outcome.counts.setdefault(crm_object, 0)
        ready: list[tuple[str, dict[str, str]]] = []
        for zuora_id, fields in prepared:
            if isinstance(fields, MappingError):
                self.outcome.fail(fields.code, fields.message, obj=crm_object, zuora_id=zuora_id)
            else:
                ready.append((zuora_id, fields))
        if not ready:
            return {}
        try:
            rows = self._crm.upsert(crm_object, self._external_id, [f for _, f in ready])
        except EntitySyncError as exc:  # the whole call failed: every record keeps the code
            for zuora_id, _ in ready:
                self.outcome.fail(exc.reason, exc.message, obj=crm_object, zuora_id=zuora_id)
            return {}
        ids: dict[str, str] = {}
        for (zuora_id, _), row in zip(ready, rows, strict=True):
            if row.success and row.id:
                ids[zuora_id] = row.id
                self.outcome.counts[crm_object] += 1
            for error in row.errors or ():
                self.outcome.fail(error.code, error.message, obj=crm_object, zuora_id=zuora_id)
        return ids


def linked(
    zuora_id: str, build: Callable[[dict[str, str]], dict[str, str]], parents: Parents
) -> Prepared:
    """Prepare a record with links to the CRM ids of its parents; a parent that did not reach
    the CRM fails the record (`parent_failed`)."""
    links: dict[str, str] = {}
    for link_field, (kind, crm_ids, parent_id) in parents.items():
        if parent_id is None:
            continue
        crm_id = crm_ids.get(parent_id)
        if crm_id is None:
            return zuora_id, MappingError(
                "parent_failed", f"{kind} {parent_id} was not synced, so this record cannot be"
            )
        links[link_field] = crm_id
    try:
        return zuora_id, build(links)
    except MappingError as exc:
        return zuora_id, exc

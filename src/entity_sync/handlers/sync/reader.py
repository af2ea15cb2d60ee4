"""Reads from the billing API with safe, chunked ZOQL."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from entity_sync.handlers.sync.mapping import READ_FIELDS
from entity_sync.handlers.sync.ports import BillingApi
from entity_sync.handlers.sync.zoql import select_by


def read_by(billing: BillingApi, obj: str, key: str, values: Iterable[str]) -> list[dict[str, Any]]:
    """Every `obj` whose `key` is one of `values` (paged and chunked), without duplicates."""
    records: dict[str, dict[str, Any]] = {}
    for zoql in select_by(obj, READ_FIELDS[obj], key, values):
        for record in billing.query(zoql):
            records.setdefault(str(record["Id"]), record)
    return list(records.values())


def ids_of(records: Iterable[dict[str, Any]], field: str = "Id") -> list[str]:
    return [str(r[field]) for r in records if r.get(field)]

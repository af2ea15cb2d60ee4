"""Safe ZOQL building. Object and field names are fixed identifiers; values are validated ids,
quoted and escaped, so no input can change a query's meaning. ZOQL has no IN: many ids become
OR-conditions, chunked under the vendor limits (200 conditions, 10,000 characters)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from entity_sync.handlers.errors import PermanentError

MAX_CONDITIONS = 200
MAX_CHARS = 10_000
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,79}$")
_ID_VALUE = re.compile(r"^[A-Za-z0-9]{1,64}$")  # the billing system's id alphabet


class UnsafeQueryInput(PermanentError):
    reason = "invalid_id"


def quote(value: str) -> str:
    """A ZOQL string literal: backslashes and single quotes escaped."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def select_by(
    obj: str,
    fields: Sequence[str],
    key: str,
    values: Iterable[str],
    *,
    max_conditions: int = MAX_CONDITIONS,
    max_chars: int = MAX_CHARS,
) -> list[str]:
    """`select fields from obj where key = v1 or key = v2 ...`, as few queries as the limits
    allow. No values, no queries."""
    for name in (obj, key, *fields):
        if not _IDENT.match(name):
            raise ValueError(f"not an identifier: {name!r}")
    unique = list(dict.fromkeys(values))
    for value in unique:
        if not _ID_VALUE.match(value):
            raise UnsafeQueryInput(f"{value[:64]!r} is not a billing id")
    prefix = f"select {', '.join(fields)} from {obj} where "
    queries: list[str] = []
    conditions: list[str] = []
    length = len(prefix)
    for value in unique:
        condition = f"{key} = {quote(value)}"
        extra = len(condition) + (len(" or ") if conditions else 0)
        if conditions and (len(conditions) >= max_conditions or length + extra > max_chars):
            queries.append(prefix + " or ".join(conditions))
            conditions, length = [], len(prefix)
            extra = len(condition)
        if length + extra > max_chars:
            raise ValueError("a single condition does not fit the query length limit")
        conditions.append(condition)
        length += extra
    if conditions:
        queries.append(prefix + " or ".join(conditions))
    return queries

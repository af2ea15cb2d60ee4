"""The query subset both sandboxes understand (ZOQL for billing, enough SOQL for the CRM):

    select f1, f2 from Object [where a = 'x' and b != 'y' or c = 'z']

`and` binds tighter than `or`. Values are quoted with single quotes; `\\'` and `\\\\` escape.
The billing limits (no IN, at most 200 conditions, at most 10,000 characters) are enforced by
the caller via `check_limits`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

MAX_QUERY_CHARS = 10_000
MAX_CONDITIONS = 200


class QueryError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Condition:
    field: str
    op: str  # "=" or "!="
    value: str | None  # None is `null`


@dataclass(frozen=True)
class Query:
    fields: tuple[str, ...]
    object: str
    where: tuple[tuple[Condition, ...], ...]  # OR of ANDs; empty means every record

    @property
    def condition_count(self) -> int:
        return sum(len(group) for group in self.where)

    def matches(self, record: Mapping[str, Any]) -> bool:
        if not self.where:
            return True
        return any(all(_holds(c, record) for c in group) for group in self.where)


_TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>'(?:[^'\\]|\\.)*')
      | (?P<op>!=|=|,|\(|\))
      | (?P<word>[A-Za-z0-9_.]+)
      | (?P<bad>\S)
    )""",
    re.VERBOSE,
)
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def parse(text: str) -> Query:
    tokens = _Tokens(_tokenize(text))
    tokens.keyword("select")
    fields = [tokens.name("field")]
    while tokens.peek() == ("op", ","):
        tokens.take()
        fields.append(tokens.name("field"))
    tokens.keyword("from")
    obj = tokens.name("object")
    groups: list[tuple[Condition, ...]] = []
    if not tokens.done():
        tokens.keyword("where")
        groups = _where(tokens)
    return Query(tuple(fields), obj, tuple(groups))


class _Tokens:
    def __init__(self, tokens: list[tuple[str, str]]) -> None:
        self._tokens = tokens
        self._pos = 0

    def done(self) -> bool:
        return self._pos >= len(self._tokens)

    def peek(self) -> tuple[str, str] | None:
        return None if self.done() else self._tokens[self._pos]

    def take(self) -> tuple[str, str]:
        if self.done():
            raise QueryError("MALFORMED_QUERY", "unexpected end of query")
        token = self._tokens[self._pos]
        self._pos += 1
        return token

    def keyword(self, word: str) -> None:
        kind, value = self.take()
        if kind != "word" or value.lower() != word:
            raise QueryError("MALFORMED_QUERY", f"expected {word!r}, found {value!r}")

    def name(self, what: str) -> str:
        kind, value = self.take()
        if kind != "word" or not _IDENT.match(value):
            raise QueryError("MALFORMED_QUERY", f"bad {what} name {value!r}")
        return value


def _where(tokens: _Tokens) -> list[tuple[Condition, ...]]:
    """Conditions joined by and/or, as an OR of AND groups."""
    groups: list[tuple[Condition, ...]] = []
    group: list[Condition] = []
    while True:
        group.append(_condition(tokens.take))
        if tokens.done():
            break
        kind, joiner = tokens.take()
        if kind == "word" and joiner.lower() == "or":
            groups.append(tuple(group))
            group = []
        elif kind != "word" or joiner.lower() != "and":
            raise QueryError("MALFORMED_QUERY", f"expected and/or, found {joiner!r}")
    groups.append(tuple(group))
    return groups


def check_limits(text: str, query: Query) -> None:
    """The billing vendor's limits, with its error code."""
    if len(text) > MAX_QUERY_CHARS:
        raise QueryError(
            "MALFORMED_QUERY", f"query is {len(text)} characters, the limit is {MAX_QUERY_CHARS}"
        )
    if query.condition_count > MAX_CONDITIONS:
        raise QueryError(
            "MALFORMED_QUERY",
            f"query has {query.condition_count} conditions, the limit is {MAX_CONDITIONS}",
        )


def _condition(take: Callable[[], tuple[str, str]]) -> Condition:
    kind, field = take()
    if kind != "word" or not _IDENT.match(field):
        raise QueryError("MALFORMED_QUERY", f"bad field name {field!r}")
    kind, op = take()
    if kind == "word" and op.lower() == "in":
        raise QueryError("MALFORMED_QUERY", "IN is not supported in ZOQL; use OR")
    if kind != "op" or op not in ("=", "!="):
        raise QueryError("MALFORMED_QUERY", f"unsupported operator {op!r}")
    kind, raw = take()
    if kind == "string":
        value: str | None = re.sub(r"\\(.)", r"\1", raw[1:-1])
    elif kind == "word" and raw.lower() == "null":
        value = None
    elif kind == "word":
        value = raw
    else:
        raise QueryError("MALFORMED_QUERY", f"bad value {raw!r}")
    return Condition(field, op, value)


def _tokenize(text: str) -> list[tuple[str, str]]:
    tokens = []
    for match in _TOKEN.finditer(text.strip()):
        kind = match.lastgroup
        assert kind is not None
        value = match.group(kind)
        if kind == "bad":
            raise QueryError("MALFORMED_QUERY", f"unexpected character {value!r}")
        tokens.append((kind, value))
    return tokens


def _holds(condition: Condition, record: Mapping[str, Any]) -> bool:
    actual = record.get(condition.field)
    actual_text = None if actual is None else _text(actual)
    equal = actual_text == condition.value
    return equal if condition.op == "=" else not equal


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)

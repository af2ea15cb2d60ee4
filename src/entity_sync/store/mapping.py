"""Rows to records and back, by column name: each aggregate declares one `RowMap` in its module."""

from __future__ import annotations

import dataclasses
import operator
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import sqlalchemy as sa

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

R = TypeVar("R", bound="DataclassInstance")
Convert = Callable[[Any], Any]


class RowMap(Generic[R]):
    """A dataclass stored in a table: each field is the column of the same name.

    `load` and `dump` convert the fields whose column holds another Python type (a tuple field
    in a JSON list column). The fields are checked against the table when the map is declared,
    so a renamed field or column fails at import instead of shifting values into wrong fields.
    Values are read by name and passed in field order, the order `names` was built in.
    """

    def __init__(
        self,
        record: type[R],
        table: sa.Table,
        *,
        load: Mapping[str, Convert] | None = None,
        dump: Mapping[str, Convert] | None = None,
    ) -> None:
        names = tuple(f.name for f in dataclasses.fields(record))
        missing = [n for n in names if n not in table.c]
        if missing or len(names) < 2:
            raise TypeError(f"{record.__name__} does not map onto {table.name}: {missing}")
        self.record_type = record
        self.table = table
        self.names = names
        self._load = [(names.index(n), convert) for n, convert in (load or {}).items()]
        self._dump = dict(dump or {})
        self._get = operator.attrgetter(*names)
        self._by_position: dict[tuple[str, ...], Callable[[Any], tuple[Any, ...]]] = {}

    def records(self, result: sa.Result[Any]) -> list[R]:
        """The records of a result whose rows hold (at least) the mapped columns.

        The hot path loads thousands of copies per batch: the fields' positions in the result
        are found once, by name, and each row is then read by position (a tenth of the time of
        reading a row's attributes by name).
        """
        keys = tuple(result.keys())
        get = self._by_position.get(keys)
        if get is None:
            missing = [n for n in self.names if n not in keys]
            if missing:
                raise TypeError(f"{self.table.name} rows without {missing}")
            get = self._by_position[keys] = operator.itemgetter(*map(keys.index, self.names))
        return [self._make(get(row)) for row in result]

    def from_values(self, values: Iterable[Any]) -> R:
        """The record of the mapped columns' values, in the order of `names`."""
        return self._make(tuple(values))

    def record(self, row: Any) -> R:
        """The record of one row (or any object with the mapped columns as attributes)."""
        return self._make(self._get(row))

    def _make(self, values: tuple[Any, ...]) -> R:
        if self._load:
            converted = list(values)
            for i, convert in self._load:
                converted[i] = convert(converted[i])
            return self.record_type(*converted)
        return self.record_type(*values)

    def values(self, record: R, **extra: Any) -> dict[str, Any]:
        """The record's columns, plus `extra` columns the record does not hold (`updated_at`)."""
        values = dict(zip(self.names, self._get(record)), **extra)  # noqa: B905 (one getter)
        for name, convert in self._dump.items():
            values[name] = convert(values[name])
        return values

    def rows(self, records: Iterable[R], **extra: Any) -> list[dict[str, Any]]:
        """`values` of many records (a batch writes thousands of copies: no call per row)."""
        if self._dump:
            return [self.values(record, **extra) for record in records]
        names, get = self.names, self._get
        return [dict(zip(names, get(record)), **extra) for record in records]  # noqa: B905

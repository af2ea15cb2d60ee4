"""Rows to records and back, by column name: each aggregate declares one `RowMap` in its module."""

from __future__ import annotations

import dataclasses
import operator
from collections.abc import Callable, Mapping
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
        self._load = dict(load or {})
        self._dump = dict(dump or {})
        self._get = operator.attrgetter(*names)  # one C call per row: the hot path loads many

    def record(self, row: Any) -> R:
        """The record of a row that has (at least) the mapped columns."""
        values = dict(zip(self.names, self._get(row), strict=True))
        for name, convert in self._load.items():
            values[name] = convert(values[name])
        return self.record_type(**values)

    def values(self, record: R, **extra: Any) -> dict[str, Any]:
        """The record's columns, plus `extra` columns the record does not hold (`updated_at`)."""
        values = dict(zip(self.names, self._get(record), strict=True))
        for name, convert in self._dump.items():
            values[name] = convert(values[name])
        values.update(extra)
        return values

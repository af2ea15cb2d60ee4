"""The ways of writing a batch's rows to PostgreSQL that benchmarks/bench_writes.py compares.

Each takes (connection, table, rows, on_conflict, newer_only) and sends one statement:
  recordset  the rows as one JSON text parameter expanded by jsonb_to_recordset: store/sql.py's
             statement, called without the chunking around it
  unnest     one typed array parameter per column, JSON columns as text[] cast to jsonb[];
             `%s` as SQLAlchemy renders parameters (psycopg then sends every list as a text
             array literal), `%b` in psycopg's binary array format
  copy       COPY ... FROM STDIN, text format (plain inserts only: COPY has no ON CONFLICT)
  sql.py     store/sql.py `bulk_insert` itself, whatever it does now
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection

from entity_sync.store import sql

Rows = list[dict[str, Any]]
Write = Callable[[Connection, sa.Table, Rows, sql.OnConflict, bool], None]
_PG = postgresql.dialect()


def _is_json(column: sa.Column[Any]) -> bool:
    return column.type.compile(dialect=_PG) in ("JSONB", "JSON")


def recordset(
    conn: Connection, table: sa.Table, rows: Rows, on_conflict: sql.OnConflict, newer_only: bool
) -> None:
    columns = tuple(rows[0])
    conflict = sql._pg_conflict(table, columns, on_conflict, newer_only)
    conn.execute(
        sql._recordset_sql(table, columns, conflict), {"rows": orjson.dumps(rows).decode()}
    )


@functools.cache
def _unnest_sql(table: sa.Table, columns: tuple[str, ...], conflict: str, fmt: str) -> str:
    names = ", ".join(f'"{c}"' for c in columns)
    arrays = ", ".join(
        f"CAST(%(c{i}){fmt} AS {table.c[c].type.compile(dialect=_PG)}[])"
        for i, c in enumerate(columns)
    )
    return f'INSERT INTO "{table.name}" ({names}) SELECT * FROM unnest({arrays}) {conflict}'


def _unnest(conn: Connection, table: sa.Table, rows: Rows, conflict: str, fmt: str) -> None:
    columns = tuple(rows[0])
    params: dict[str, list[Any]] = {}
    for i, c in enumerate(columns):
        values = [r.get(c) for r in rows]
        if _is_json(table.c[c]):
            values = [None if v is None else orjson.dumps(v).decode() for v in values]
        params[f"c{i}"] = values
    conn.exec_driver_sql(_unnest_sql(table, columns, conflict, fmt), params)


def unnest(
    conn: Connection, table: sa.Table, rows: Rows, on_conflict: sql.OnConflict, newer_only: bool
) -> None:
    """Arrays in binary (psycopg's %b placeholder)."""
    conflict = sql._pg_conflict(table, tuple(rows[0]), on_conflict, newer_only)
    _unnest(conn, table, rows, conflict, "b")


def unnest_auto(
    conn: Connection, table: sa.Table, rows: Rows, on_conflict: sql.OnConflict, newer_only: bool
) -> None:
    """Arrays in the format psycopg picks for %s, as SQLAlchemy renders every parameter: text,
    for every list."""
    conflict = sql._pg_conflict(table, tuple(rows[0]), on_conflict, newer_only)
    _unnest(conn, table, rows, conflict, "s")


def copy(
    conn: Connection, table: sa.Table, rows: Rows, on_conflict: sql.OnConflict, newer_only: bool
) -> None:
    if on_conflict != "error":
        raise ValueError("COPY cannot resolve conflicts")
    columns = tuple(rows[0])
    json = [_is_json(table.c[c]) for c in columns]
    names = ", ".join(f'"{c}"' for c in columns)
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    with cursor.copy(f'COPY "{table.name}" ({names}) FROM STDIN') as out:
        for r in rows:
            out.write_row(
                [
                    orjson.dumps(v).decode() if j and v is not None else v
                    for v, j in zip((r.get(c) for c in columns), json, strict=True)
                ]
            )


def library(
    conn: Connection, table: sa.Table, rows: Rows, on_conflict: sql.OnConflict, newer_only: bool
) -> None:
    """What store/sql.py does today."""
    sql.bulk_insert(conn, table, rows, on_conflict=on_conflict, newer_only=newer_only)


PATHS: dict[str, Write] = {
    "recordset": recordset,
    "unnest %s": unnest_auto,
    "unnest %b": unnest,
    "copy": copy,
    "sql.py": library,
}

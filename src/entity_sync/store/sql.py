"""The building blocks every store module shares: chunking, bulk inserts and upserts, `IN`.

The hot path writes each table in one statement per batch on PostgreSQL (docs/scaling.md counts
them); these helpers are what keeps it so, whatever the row count.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Iterator, Sequence
from typing import Any, Literal, TypeVar

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Connection

CHUNK = 500  # keeps IN lists and statement sizes reasonable on both backends
RECORDSET_CHUNK = 5000  # rows per JSON parameter of a PostgreSQL bulk insert

OnConflict = Literal["error", "ignore", "update"]
T = TypeVar("T")


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def chunks(items: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    """`items` in slices of at most `size`, in order."""
    for i in range(0, len(items), size):
        yield items[i : i + size]


def member_of(conn: Connection, column: sa.ColumnElement[str], values: Sequence[str]) -> Any:
    """`column IN values`. On PostgreSQL one array parameter (`= ANY`), so the statement text
    stays short and psycopg reuses its parse; an expanded IN of 500 ids is parsed every time."""
    if conn.dialect.name == "postgresql":
        return column == sa.any_(sa.bindparam(None, list(values), type_=ARRAY(sa.String)))
    return column.in_(values)


def lookup(
    conn: Connection,
    table: sa.Table,
    columns: Sequence[sa.ColumnElement[str]],
    keys: Sequence[tuple[str, ...]],
    *where: sa.ColumnElement[bool],
) -> sa.Select[Any]:
    """The rows of `table` whose `columns` hold one of `keys` (and that meet `where`).

    On PostgreSQL one index probe per key, whatever the statistics say: a join of the keys
    (`unnest` of one array per column) with a LATERAL subquery that the planner may not
    flatten (`OFFSET 0`). Give every column of the index to probe: a probe on a prefix of it
    walks every row under that prefix. Written as `column = ANY(values)`, the planner falls
    back to its default selectivity while a table has no statistics (a new database, until
    autovacuum's first ANALYZE): 500 values then look like the whole table, and it scans every
    row of the type (7.3 ms per batch at 100,000 objects, against 0.7 ms probed;
    docs/scaling.md). With statistics both take the same.
    """
    if conn.dialect.name != "postgresql":
        return sa.select(table).where(*where, sa.tuple_(*columns).in_(keys))
    names = [f"k{i}" for i in range(len(columns))]
    arrays = [
        sa.bindparam(None, [key[i] for key in keys], type_=ARRAY(sa.String))
        for i in range(len(columns))
    ]
    k = sa.func.unnest(*arrays).table_valued(*names).render_derived(name="k")
    found = (
        sa.select(table)
        .where(*where, *(c == k.c[n] for c, n in zip(columns, names, strict=True)))
        .offset(sa.literal_column("0"))
        .lateral("found")
    )
    return sa.select(found).select_from(k).join(found, sa.true())


@functools.cache
def _recordset_sql(
    table: sa.Table, columns: tuple[str, ...], conflict: str, returning: str | None = None
) -> sa.TextClause:
    pg = postgresql.dialect()
    names = ", ".join(f'"{c}"' for c in columns)
    types = ", ".join(f'"{c}" {table.c[c].type.compile(dialect=pg)}' for c in columns)
    return sa.text(
        f'INSERT INTO "{table.name}" ({names}) SELECT {names} '
        f"FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS x({types}) {conflict}"
        + (f' RETURNING "{returning}"' if returning else "")
    )


def _pg_conflict(
    table: sa.Table, columns: Sequence[str], on_conflict: OnConflict, newer_only: bool
) -> str:
    if on_conflict == "ignore":
        return "ON CONFLICT DO NOTHING"
    if on_conflict != "update":
        return ""
    keys = [c.name for c in table.primary_key.columns]
    sets = ", ".join(f'"{c}" = EXCLUDED."{c}"' for c in columns if c not in keys)
    conflict = f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {sets}"
    if newer_only:
        conflict += f' WHERE "{table.name}".version <= EXCLUDED.version'
    return conflict


def bulk_insert(
    conn: Connection,
    table: sa.Table,
    rows: list[dict[str, Any]],
    *,
    on_conflict: OnConflict = "error",
    newer_only: bool = False,
) -> None:
    """Insert many rows; on_conflict is "error", "ignore" or "update" (by primary key).

    `newer_only` (with "update"): a stored row is replaced only by a version at least as new,
    compared with the latest committed row, so concurrent workers never write an older
    version over a newer one (the fence that replaces a global lock, docs/scaling.md).

    PostgreSQL gets one statement per table whatever the row count: the rows travel as one
    JSON parameter and are expanded by jsonb_to_recordset (executemany would send one
    statement per row). SQLite runs in-process, where executemany is already cheap.
    """
    if not rows:
        return
    columns = tuple(rows[0])
    if conn.dialect.name == "postgresql":
        sql = _recordset_sql(table, columns, _pg_conflict(table, columns, on_conflict, newer_only))
        for chunk in chunks(rows, RECORDSET_CHUNK):
            conn.execute(sql, {"rows": orjson.dumps(chunk).decode()})
        return
    stmt = sqlite.insert(table)
    if on_conflict == "ignore":
        stmt = stmt.on_conflict_do_nothing()
    elif on_conflict == "update":
        keys = [c.name for c in table.primary_key.columns]
        stmt = stmt.on_conflict_do_update(
            index_elements=keys,
            set_={c: stmt.excluded[c] for c in columns if c not in keys},
            where=table.c.version <= stmt.excluded.version if newer_only else None,
        )
    conn.execute(stmt, rows)


def insert_new(conn: Connection, table: sa.Table, rows: list[dict[str, Any]], key: str) -> set[Any]:
    """Insert the rows whose primary key is not stored yet; returns their `key` values.

    On PostgreSQL one statement (ON CONFLICT DO NOTHING RETURNING): a key that an open
    transaction is inserting waits for it and counts as stored if that one commits. SQLite
    runs one writer at a time, so there a read of the stored keys and an insert are the same.
    """
    if not rows:
        return set()
    if conn.dialect.name == "postgresql":
        sql = _recordset_sql(table, tuple(rows[0]), "ON CONFLICT DO NOTHING", key)
        new: set[Any] = set()
        for chunk in chunks(rows, RECORDSET_CHUNK):
            new.update(conn.execute(sql, {"rows": orjson.dumps(chunk).decode()}).scalars())
        return new
    col = table.c[key]
    stored: set[Any] = set()
    for chunk in chunks([r[key] for r in rows]):
        stored.update(conn.execute(sa.select(col).where(col.in_(chunk))).scalars())
    fresh = [r for r in rows if r[key] not in stored]
    bulk_insert(conn, table, fresh, on_conflict="ignore")  # "ignore": a key twice in `rows`
    return {r[key] for r in fresh}


def upsert(
    conn: Connection, table: sa.Table, rows: list[dict[str, Any]], *, newer_only: bool = False
) -> None:
    bulk_insert(conn, table, rows, on_conflict="update", newer_only=newer_only)

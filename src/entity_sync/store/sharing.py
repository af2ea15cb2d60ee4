"""The sharing state: entities, links, settings, control levels, sources and copies.

Loads what a batch needs (the small tables whole, sources and copies on demand) and writes back
exactly the rows that changed, one statement per table.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Mapping, Sequence
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from entity_sync.handlers.sharing.model import (
    TYPE_ORDER,
    Copy,
    CopyKey,
    Entity,
    Link,
    SourceKey,
    SourceObject,
)
from entity_sync.handlers.sharing.state import SharingState
from entity_sync.store import tables as t
from entity_sync.store.decisions import insert_decisions
from entity_sync.store.mapping import R, RowMap
from entity_sync.store.sql import chunks, lookup, upsert, utcnow

ENTITIES = RowMap(
    Entity, t.entities, load={"active_currencies": tuple}, dump={"active_currencies": list}
)
LINKS = RowMap(Link, t.connections)
SOURCES = RowMap(SourceObject, t.source_objects)
COPIES = RowMap(Copy, t.target_copies)
PERIOD_SETTING = "accounting_period"  # the only share setting the rules read (rule 5)
K = TypeVar("K", str, SourceKey, CopyKey)


class DbLoader:
    """`StateLoader` over one open connection (inside the batch transaction).

    `copies_of`: load the copies of this one connection only, for a state that a bulk job of
    that connection uses (a backfill or release never reads other connections' copies).
    """

    def __init__(self, conn: Connection, copies_of: str | None = None) -> None:
        self.conn = conn
        self.copies_of = copies_of

    def load_sources(self, keys: Collection[SourceKey]) -> list[SourceObject]:
        col = t.source_objects.c
        out: list[SourceObject] = []
        for chunk in chunks(sorted(set(keys))):
            stmt = lookup(self.conn, t.source_objects, (col.object_type, col.object_id), chunk)
            out.extend(SOURCES.records(self.conn.execute(stmt)))
        return out

    def load_sources_of_type(self, object_type: str) -> list[SourceObject]:
        rows = self.conn.execute(
            sa.select(t.source_objects).where(t.source_objects.c.object_type == object_type)
        )
        return SOURCES.records(rows)

    def load_copies(self, keys: Collection[SourceKey]) -> list[Copy]:
        # With `copies_of`, the key of the primary key whole (connection, type, id): one probe
        # each; without it, ix_target_copies_source.
        col = t.target_copies.c
        columns = (col.object_type, col.source_object_id)
        only = [] if self.copies_of is None else [col.connection_id == self.copies_of]
        out: list[Copy] = []
        for chunk in chunks(sorted(set(keys))):
            stmt = lookup(self.conn, t.target_copies, columns, chunk, *only)
            out.extend(COPIES.records(self.conn.execute(stmt)))
        return out

    def load_sources_page(
        self, object_types: Sequence[str], after: SourceKey | None, limit: int
    ) -> list[SourceObject]:
        """Keyset pages in backfill order: by type (parents first), then by id."""
        col = t.source_objects.c
        out: list[SourceObject] = []
        for object_type in object_types:
            if after is not None and TYPE_ORDER[object_type] < TYPE_ORDER[after[0]]:
                continue
            stmt = sa.select(t.source_objects).where(col.object_type == object_type)
            if after is not None and object_type == after[0]:
                stmt = stmt.where(col.object_id > after[1])
            stmt = stmt.order_by(col.object_id).limit(limit - len(out))
            out.extend(SOURCES.records(self.conn.execute(stmt)))
            if len(out) >= limit:
                break
        return out

    def load_copies_page(
        self, connection_id: str, object_type: str, after: str | None, limit: int
    ) -> list[Copy]:
        col = t.target_copies.c
        stmt = sa.select(t.target_copies).where(
            col.connection_id == connection_id, col.object_type == object_type
        )
        if after is not None:
            stmt = stmt.where(col.source_object_id > after)
        stmt = stmt.order_by(col.source_object_id).limit(limit)
        return COPIES.records(self.conn.execute(stmt))


def load_state(conn: Connection, copies_of: str | None = None) -> SharingState:
    """The small, always-complete part of the state, plus a loader for the rest (of the copies,
    only those of connection `copies_of` when given: see DbLoader)."""
    state = SharingState(DbLoader(conn, copies_of))
    if conn.dialect.name == "postgresql":
        _load_small_tables_at_once(conn, state)
        return state
    for entity in ENTITIES.records(conn.execute(sa.select(t.entities))):
        state.entities[entity.entity_id] = entity
    for link in LINKS.records(conn.execute(sa.select(t.connections))):
        state.connections[link.connection_id] = link
    settings = t.share_settings
    for r in conn.execute(sa.select(settings).where(settings.c.object_type == PERIOD_SETTING)):
        state.acceptance[r.target_entity] = r.acceptance
    for r in conn.execute(sa.select(t.control_levels)):
        state.levels[r.attribute] = r.level
    return state


def _json_rows(table: sa.Table, columns: Sequence[str], where: str = "") -> str:
    """A subquery: `columns` of every row of `table` (that meets `where`), as a JSON array of
    arrays."""
    names = ", ".join(f'"{n}"' for n in columns)
    return (
        f"(SELECT coalesce(json_agg(json_build_array({names})), '[]') FROM \"{table.name}\"{where})"
    )


# The four small tables in one statement: a round trip each cost about 3% of a batch's time at
# 1 target (py-spy; each waits for the server to be scheduled on a busy machine).
_SMALL_TABLES = sa.text(
    "SELECT "
    + ", ".join(
        [
            _json_rows(t.entities, ENTITIES.names),
            _json_rows(t.connections, LINKS.names),
            _json_rows(
                t.share_settings, ("target_entity", "acceptance"), " WHERE object_type = :setting"
            ),
            _json_rows(t.control_levels, ("attribute", "level")),
        ]
    )
)
_DATE_FIELD = ENTITIES.names.index("earliest_activity_date")  # JSON holds it as text


def _load_small_tables_at_once(conn: Connection, state: SharingState) -> None:
    entities, links, acceptance, levels = conn.execute(
        _SMALL_TABLES, {"setting": PERIOD_SETTING}
    ).one()
    for values in entities:
        if values[_DATE_FIELD] is not None:
            values[_DATE_FIELD] = dt.date.fromisoformat(values[_DATE_FIELD])
        entity = ENTITIES.from_values(values)
        state.entities[entity.entity_id] = entity
    for values in links:
        link = LINKS.from_values(values)
        state.connections[link.connection_id] = link
    state.acceptance.update(dict(acceptance))
    state.levels.update(dict(levels))


def flush_state(conn: Connection, state: SharingState) -> None:
    """Write every changed row and every decision of the batch.

    Each table in key order, tables always in this order: concurrent batches then lock shared
    rows in one order and cannot deadlock. Sources and copies are version-guarded.
    """
    now = utcnow()
    d = state.dirty
    upsert(conn, t.entities, _rows(ENTITIES, state.entities, d.entities, now))
    upsert(conn, t.connections, _rows(LINKS, state.connections, d.connections, now))
    upsert(
        conn,
        t.share_settings,
        [
            {
                "target_entity": k,
                "object_type": PERIOD_SETTING,
                "acceptance": state.acceptance[k],
                "updated_at": now,
            }
            for k in sorted(d.acceptance)
        ],
    )
    upsert(
        conn,
        t.control_levels,
        [{"attribute": k, "level": state.levels[k], "updated_at": now} for k in sorted(d.levels)],
    )
    upsert(conn, t.source_objects, _rows(SOURCES, state.sources, d.sources, now), newer_only=True)
    upsert(conn, t.target_copies, _rows(COPIES, state.copies, d.copies, now), newer_only=True)
    insert_decisions(conn, state.decisions, now)


def _rows(
    mapping: RowMap[R], records: Mapping[K, R], dirty: Collection[K], now: dt.datetime
) -> list[dict[str, Any]]:
    """The changed records' rows, in key order (see flush_state)."""
    return mapping.rows((records[k] for k in sorted(dirty)), updated_at=now)


def entity_ids(engine: Engine) -> set[str]:
    """Every stored entity id (a sync request may name only these)."""
    with engine.connect() as conn:
        return set(conn.execute(sa.select(t.entities.c.entity_id)).scalars())

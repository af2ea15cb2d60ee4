"""Loads the sharing state a batch needs and writes back exactly what changed, in bulk."""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Connection

from entity_sync.handlers.sharing.model import (
    TYPE_ORDER,
    BulkJob,
    Copy,
    Decision,
    Entity,
    Link,
    SourceKey,
    SourceObject,
)
from entity_sync.handlers.sharing.state import SharingState
from entity_sync.store import tables as t

_CHUNK = 500  # keeps IN lists and statement sizes reasonable on both backends


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _chunks(items: Sequence[Any], size: int = _CHUNK) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


@functools.cache
def _recordset_sql(table: sa.Table, columns: tuple[str, ...], conflict: str) -> sa.TextClause:
    pg = postgresql.dialect()
    names = ", ".join(f'"{c}"' for c in columns)
    types = ", ".join(f'"{c}" {table.c[c].type.compile(dialect=pg)}' for c in columns)
    return sa.text(
        f'INSERT INTO "{table.name}" ({names}) SELECT {names} '
        f"FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS x({types}) {conflict}"
    )


def bulk_insert(
    conn: Connection,
    table: sa.Table,
    rows: list[dict[str, Any]],
    *,
    on_conflict: str = "error",
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
    keys = [c.name for c in table.primary_key.columns]
    columns = tuple(rows[0])
    if conn.dialect.name == "postgresql":
        conflict = ""
        if on_conflict == "ignore":
            conflict = "ON CONFLICT DO NOTHING"
        elif on_conflict == "update":
            sets = ", ".join(f'"{c}" = EXCLUDED."{c}"' for c in columns if c not in keys)
            conflict = f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {sets}"
            if newer_only:
                conflict += f' WHERE "{table.name}".version <= EXCLUDED.version'
        sql = _recordset_sql(table, columns, conflict)
        for chunk in _chunks(rows, 5000):
            conn.execute(sql, {"rows": orjson.dumps(chunk).decode()})
        return
    stmt = sqlite.insert(table)
    if on_conflict == "ignore":
        stmt = stmt.on_conflict_do_nothing()
    elif on_conflict == "update":
        stmt = stmt.on_conflict_do_update(
            index_elements=keys,
            set_={c: stmt.excluded[c] for c in columns if c not in keys},
            where=table.c.version <= stmt.excluded.version if newer_only else None,
        )
    conn.execute(stmt, rows)


def upsert(
    conn: Connection, table: sa.Table, rows: list[dict[str, Any]], *, newer_only: bool = False
) -> None:
    bulk_insert(conn, table, rows, on_conflict="update", newer_only=newer_only)


def member_of(conn: Connection, column: sa.ColumnElement[str], values: Sequence[str]) -> Any:
    """`column IN values`. On PostgreSQL one array parameter (`= ANY`), so the statement text
    stays short and psycopg reuses its parse; an expanded IN of 500 ids is parsed every time."""
    if conn.dialect.name == "postgresql":
        return column == sa.any_(sa.bindparam(None, list(values), type_=ARRAY(sa.String)))
    return column.in_(values)


def _source(row: Any) -> SourceObject:
    return SourceObject(
        row.object_type, row.object_id, row.parent_id, row.version, row.data, row.event_id
    )


def _copy(row: Any) -> Copy:
    return Copy(
        row.connection_id,
        row.target_entity,
        row.object_type,
        row.source_object_id,
        row.target_object_id,
        row.target_parent_id,
        row.version,
        row.data,
    )


class DbLoader:
    """`StateLoader` over one open connection (inside the batch transaction).

    `copies_of`: load the copies of this one connection only, for a state that a bulk job of
    that connection uses (a backfill or release never reads other connections' copies).
    """

    def __init__(self, conn: Connection, copies_of: str | None = None) -> None:
        self.conn = conn
        self.copies_of = copies_of

    def load_sources(self, keys: Collection[SourceKey]) -> list[SourceObject]:
        # By type, so the primary key (object_type, object_id) serves every lookup.
        by_type: dict[str, set[str]] = {}
        for object_type, object_id in keys:
            by_type.setdefault(object_type, set()).add(object_id)
        out: list[SourceObject] = []
        for object_type, ids in sorted(by_type.items()):
            for chunk in _chunks(sorted(ids)):
                rows = self.conn.execute(
                    sa.select(t.source_objects)
                    .where(t.source_objects.c.object_type == object_type)
                    .where(member_of(self.conn, t.source_objects.c.object_id, chunk))
                )
                out.extend(_source(r) for r in rows)
        return out

    def load_sources_of_type(self, object_type: str) -> list[SourceObject]:
        rows = self.conn.execute(
            sa.select(t.source_objects).where(t.source_objects.c.object_type == object_type)
        )
        return [_source(r) for r in rows]

    def load_copies(self, keys: Collection[SourceKey]) -> list[Copy]:
        ids = sorted({object_id for _, object_id in keys})
        wanted = set(keys)
        out: list[Copy] = []
        for chunk in _chunks(ids):
            stmt = sa.select(t.target_copies).where(
                member_of(self.conn, t.target_copies.c.source_object_id, chunk)
            )
            if self.copies_of is not None:
                stmt = stmt.where(t.target_copies.c.connection_id == self.copies_of)
            rows = self.conn.execute(stmt)
            out.extend(
                c for r in rows if ((c := _copy(r)).object_type, c.source_object_id) in wanted
            )
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
            out.extend(_source(r) for r in self.conn.execute(stmt))
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
        return [_copy(r) for r in self.conn.execute(stmt)]


def load_state(conn: Connection, copies_of: str | None = None) -> SharingState:
    """The small, always-complete part of the state, plus a loader for the rest (of the copies,
    only those of connection `copies_of` when given: see DbLoader)."""
    state = SharingState(DbLoader(conn, copies_of))
    for r in conn.execute(sa.select(t.entities)):
        state.entities[r.entity_id] = Entity(
            r.entity_id,
            r.name,
            r.display_name,
            r.parent_id,
            r.is_global,
            r.earliest_activity_date,
            r.has_own_accounting_periods,
            tuple(r.active_currencies),
        )
    for r in conn.execute(sa.select(t.connections)):
        state.connections[r.connection_id] = Link(
            r.connection_id, r.source_entity, r.target_entity, r.status
        )
    for r in conn.execute(
        sa.select(t.share_settings).where(t.share_settings.c.object_type == "accounting_period")
    ):
        state.acceptance[r.target_entity] = r.acceptance
    for r in conn.execute(sa.select(t.control_levels)):
        state.levels[r.attribute] = r.level
    return state


def flush_state(conn: Connection, state: SharingState) -> None:
    """Write every changed row and every decision of the batch.

    Each table in key order, tables always in this order: concurrent batches then lock shared
    rows in one order and cannot deadlock. Sources and copies are version-guarded.
    """
    now = _now()
    d = state.dirty
    upsert(
        conn,
        t.entities,
        [
            {
                "entity_id": e.entity_id,
                "name": e.name,
                "display_name": e.display_name,
                "parent_id": e.parent_id,
                "is_global": e.is_global,
                "earliest_activity_date": e.earliest_activity_date,
                "has_own_accounting_periods": e.has_own_accounting_periods,
                "active_currencies": list(e.active_currencies),
                "updated_at": now,
            }
            for e in (state.entities[k] for k in sorted(d.entities))
        ],
    )
    upsert(
        conn,
        t.connections,
        [
            {
                "connection_id": c.connection_id,
                "source_entity": c.source_entity,
                "target_entity": c.target_entity,
                "status": c.status,
                "updated_at": now,
            }
            for c in (state.connections[k] for k in sorted(d.connections))
        ],
    )
    upsert(
        conn,
        t.share_settings,
        [
            {
                "target_entity": k,
                "object_type": "accounting_period",
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
    upsert(
        conn,
        t.source_objects,
        [
            {
                "object_type": s.object_type,
                "object_id": s.object_id,
                "parent_id": s.parent_id,
                "version": s.version,
                "data": s.data,
                "event_id": s.event_id,
                "updated_at": now,
            }
            for s in (state.sources[k] for k in sorted(d.sources))
        ],
        newer_only=True,
    )
    upsert(
        conn,
        t.target_copies,
        [
            {
                "connection_id": c.connection_id,
                "object_type": c.object_type,
                "source_object_id": c.source_object_id,
                "target_entity": c.target_entity,
                "target_object_id": c.target_object_id,
                "target_parent_id": c.target_parent_id,
                "version": c.version,
                "data": c.data,
                "updated_at": now,
            }
            for c in (state.copies[k] for k in sorted(d.copies))
        ],
        newer_only=True,
    )
    bulk_insert(conn, t.decisions, decision_rows(state.decisions, now))


def decision_rows(decisions: Sequence[Decision], at: dt.datetime) -> list[dict[str, Any]]:
    """The decision log rows: decisions that differ only in their target share one row.

    A fan-out to N targets is one row listing them in `targets` instead of N rows. A target's
    decisions about one object keep their order: a decision joins an earlier row only if its
    target has no later row about that object. A row for one target keeps the old shape
    (`target_entity` set, `targets` NULL), as does a decision about no target.
    """
    rows: list[dict[str, Any]] = []
    targets: list[list[str]] = []  # per row
    shared: dict[tuple[Any, ...], int] = {}  # what a row says, but the target -> row
    latest: dict[tuple[Any, ...], int] = {}  # (target, object type, object id) -> last row
    for x in decisions:
        if x.target_entity is not None:
            said: tuple[Any, ...] = (x.cause_event_id, x.object_type, x.object_id, x.version)
            said += (x.decision, x.reason, x.message)
            about = (x.target_entity, x.object_type, x.object_id)
            i = shared.get(said, -1)
            if i >= 0 and latest.get(about, -1) <= i:
                targets[i].append(x.target_entity)
                latest[about] = i
                continue
            shared[said] = latest[about] = len(rows)
        rows.append(
            {
                "at": at,
                "cause_event_id": x.cause_event_id,
                "target_entity": x.target_entity,
                "object_type": x.object_type,
                "object_id": x.object_id,
                "version": x.version,
                "decision": x.decision,
                "reason": x.reason,
                "message": x.message,
                "targets": None,
            }
        )
        targets.append([x.target_entity] if x.target_entity is not None else [])
    for row, listed in zip(rows, targets, strict=True):
        if len(listed) > 1:
            row["target_entity"], row["targets"] = None, listed
    return rows


def seen_event_ids(conn: Connection, event_ids: Collection[str]) -> set[str]:
    seen: set[str] = set()
    col = t.processed_events.c.event_id
    for chunk in _chunks(sorted(event_ids)):
        seen.update(conn.execute(sa.select(col).where(member_of(conn, col, chunk))).scalars())
    return seen


def mark_processed(conn: Connection, items: list[tuple[str, str]]) -> None:
    now = _now()
    bulk_insert(
        conn,
        t.processed_events,
        [{"event_id": e, "queue": q, "processed_at": now} for e, q in sorted(items)],
        on_conflict="ignore",
    )


def prune_processed(conn: Connection, older_than: dt.datetime, limit: int = 10_000) -> int:
    """Forget event ids processed before `older_than` (a chunk at a time); returns how many."""
    col = t.processed_events.c
    oldest = sa.select(col.event_id).where(col.processed_at < older_than).limit(limit)
    result = conn.execute(t.processed_events.delete().where(col.event_id.in_(oldest)))
    return int(result.rowcount or 0)


# --- bulk jobs (handlers/sharing/model.py: BulkJob) ---


def insert_jobs(conn: Connection, jobs: Sequence[BulkJob]) -> None:
    """Record new bulk jobs with their size; a job already recorded (redelivery) stays."""
    if not jobs:
        return
    now = _now()
    rows = []
    for job in jobs:
        rows.append(
            {
                "job_id": job.job_id,
                "kind": job.kind,
                "connection_id": job.connection_id,
                "target_entity": job.target_entity,
                "cause_event_id": job.cause_event_id,
                "object_types": list(job.object_types),
                "currencies": list(job.currencies),
                "cursor_type": None,
                "cursor_id": None,
                "done": 0,
                "total": _job_size(conn, job),
                "status": "running",
                "created_at": now,
                "updated_at": now,
            }
        )
    bulk_insert(conn, t.bulk_jobs, sorted(rows, key=lambda r: r["job_id"]), on_conflict="ignore")


def _job_size(conn: Connection, job: BulkJob) -> int:
    if job.kind == "release":
        c = t.target_copies.c
        stmt = sa.select(sa.func.count()).where(
            c.connection_id == job.connection_id, c.object_type == job.object_types[0]
        )
    else:
        s = t.source_objects.c
        stmt = sa.select(sa.func.count()).select_from(t.source_objects)
        if job.object_types:
            stmt = stmt.where(s.object_type.in_(job.object_types))
    return int(conn.execute(stmt).scalar_one())


@dataclass(frozen=True, slots=True)
class JobRow:
    job: BulkJob
    cursor: SourceKey | None
    done: int
    total: int


def claim_job(conn: Connection) -> JobRow | None:
    """The oldest running job no other worker is running now (locked until commit)."""
    c = t.bulk_jobs.c
    row = conn.execute(
        sa.select(t.bulk_jobs)
        .where(c.status == "running")
        .order_by(c.created_at, c.job_id)
        .limit(1)
        .with_for_update(skip_locked=True)
    ).first()
    if row is None:
        return None
    job = BulkJob(
        row.kind,
        row.connection_id,
        row.target_entity,
        row.cause_event_id,
        tuple(row.object_types),
        tuple(row.currencies),
    )
    cursor = (row.cursor_type, row.cursor_id) if row.cursor_type and row.cursor_id else None
    return JobRow(job, cursor, int(row.done), int(row.total))


def save_job(
    conn: Connection, job_id: str, cursor: SourceKey | None, done: int, status: str
) -> None:
    conn.execute(
        t.bulk_jobs.update()
        .where(t.bulk_jobs.c.job_id == job_id)
        .values(
            cursor_type=cursor[0] if cursor else None,
            cursor_id=cursor[1] if cursor else None,
            done=done,
            status=status,
            updated_at=_now(),
        )
    )


def running_jobs(conn: Connection) -> list[dict[str, Any]]:
    c = t.bulk_jobs.c
    rows = conn.execute(
        sa.select(c.kind, c.target_entity, c.done, c.total, c.created_at, c.cause_event_id)
        .where(c.status == "running")
        .order_by(c.created_at)
    )
    return [{str(k): v for k, v in r._mapping.items()} for r in rows]  # plain str keys, for JSON

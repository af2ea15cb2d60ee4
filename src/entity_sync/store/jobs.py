"""Bulk jobs (handlers/sharing/model.py `BulkJob`): recorded by an admin event, then claimed
and advanced a chunk at a time by the workers (runtime/bulk.py)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from entity_sync.handlers.sharing.model import BulkJob, SourceKey
from entity_sync.store import tables as t
from entity_sync.store.mapping import RowMap
from entity_sync.store.sql import bulk_insert, utcnow

JOBS = RowMap(
    BulkJob,
    t.bulk_jobs,
    load={"object_types": tuple, "currencies": tuple},
    dump={"object_types": list, "currencies": list},
)


@dataclass(frozen=True, slots=True)
class JobRow:
    """A claimed job and its progress: the next chunk starts after `cursor`."""

    job: BulkJob
    cursor: SourceKey | None
    done: int
    total: int


def insert_jobs(conn: Connection, jobs: Sequence[BulkJob]) -> None:
    """Record new bulk jobs with their size; a job already recorded (redelivery) stays."""
    if not jobs:
        return
    now = utcnow()
    rows = [
        JOBS.values(
            job,
            job_id=job.job_id,
            cursor_type=None,
            cursor_id=None,
            done=0,
            total=_job_size(conn, job),
            status="running",
            created_at=now,
            updated_at=now,
        )
        for job in jobs
    ]
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
    cursor = (row.cursor_type, row.cursor_id) if row.cursor_type and row.cursor_id else None
    return JobRow(job=JOBS.record(row), cursor=cursor, done=int(row.done), total=int(row.total))


def save_job(
    conn: Connection, job_id: str, cursor: SourceKey | None, done: int, status: str
) -> None:
    """Advance a claimed job: its cursor, how many objects are done, and its status."""
    conn.execute(
        t.bulk_jobs.update()
        .where(t.bulk_jobs.c.job_id == job_id)
        .values(
            cursor_type=cursor[0] if cursor else None,
            cursor_id=cursor[1] if cursor else None,
            done=done,
            status=status,
            updated_at=utcnow(),
        )
    )


def running_jobs(conn: Connection) -> list[dict[str, Any]]:
    """What `entity-sync status` shows of each running job, oldest first."""
    c = t.bulk_jobs.c
    rows = conn.execute(
        sa.select(c.kind, c.target_entity, c.done, c.total, c.created_at, c.cause_event_id)
        .where(c.status == "running")
        .order_by(c.created_at)
    )
    return [{str(k): v for k, v in r._mapping.items()} for r in rows]  # plain str keys, for JSON

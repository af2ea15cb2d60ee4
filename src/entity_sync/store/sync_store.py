"""Sync sessions and the one-sync-per-object locks, in the state database (shared by workers)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine

from entity_sync.schemas.inputs import SyncRequest
from entity_sync.store import tables as t
from entity_sync.store.sql import utcnow


def _ts(value: Any) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))


class DbSyncStore:
    """`SyncStore`: every session with its `sync.completed` body; old ones pruned on save."""

    def __init__(self, engine: Engine, retention_days: float = 7.0) -> None:
        self.engine = engine
        self.retention = dt.timedelta(days=retention_days)

    def save(self, completed: Mapping[str, Any], *, request: SyncRequest) -> None:
        row = {
            "request_id": str(completed["request_id"]),
            "object_type": request.object_type,
            "origin": request.origin,
            "requested_by": request.requested_by,
            "status": str(completed["status"]),
            "reason": completed.get("reason"),
            "started_at": _ts(completed["started_at"]),
            "finished_at": _ts(completed["finished_at"]),
            "completed": dict(completed),
        }
        dialect = postgresql if self.engine.dialect.name == "postgresql" else sqlite
        stmt = dialect.insert(t.sync_sessions).values(row)
        stmt = stmt.on_conflict_do_update(
            index_elements=["request_id"],
            set_={k: stmt.excluded[k] for k in row if k != "request_id"},
        )
        with self.engine.begin() as conn:
            conn.execute(stmt)
            conn.execute(
                t.sync_sessions.delete().where(
                    t.sync_sessions.c.finished_at < utcnow() - self.retention
                )
            )

    def recent(self, limit: int = 20) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(t.sync_sessions.c.completed)
                .order_by(t.sync_sessions.c.finished_at.desc())
                .limit(limit)
            ).scalars()
            return [dict(r) for r in rows]

    def history(self, limit: int = 20) -> list[tuple[str, dict[str, Any]]]:
        """The newest sessions as (object_type of the request, `sync.completed` body)."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(t.sync_sessions.c.object_type, t.sync_sessions.c.completed)
                .order_by(t.sync_sessions.c.finished_at.desc())
                .limit(limit)
            ).all()
        return [(str(kind), dict(completed)) for kind, completed in rows]

    def get(self, request_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(t.sync_sessions.c.completed).where(
                    t.sync_sessions.c.request_id == request_id
                )
            ).scalar_one_or_none()
        return dict(row) if row is not None else None


class DbSyncLocks:
    """`SyncLocks` across workers: a row per held key; an expired row may be taken over."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def try_acquire(self, key: str, *, ttl_seconds: float) -> bool:
        now = utcnow()
        dialect = postgresql if self.engine.dialect.name == "postgresql" else sqlite
        stmt = dialect.insert(t.sync_locks).values(
            key=key, expires_at=now + dt.timedelta(seconds=ttl_seconds)
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=["key"],
            set_={"expires_at": stmt.excluded.expires_at},
            where=t.sync_locks.c.expires_at < now,
        ).returning(t.sync_locks.c.key)
        with self.engine.begin() as conn:  # a row comes back only if we took the lock
            return conn.execute(stmt).first() is not None

    def release(self, key: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(t.sync_locks.delete().where(t.sync_locks.c.key == key))

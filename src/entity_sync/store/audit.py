"""SQL of `operation_history`: every replay and purge, from the CLI or the console."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from entity_sync.store import tables as t

H = t.operation_history


@dataclass(frozen=True, slots=True)
class Entry:
    """The start of one replay or purge."""

    actor: str  # OS user (CLI) or token role (console)
    via: str  # cli | console
    action: str  # replay | purge
    scope: dict[str, Any]  # the filter it acts on
    dry_run: bool
    selected: int


@dataclass(frozen=True, slots=True)
class Progress:
    done: int
    messages: Sequence[Sequence[str]]  # [queue, message id, destination]
    status: str = "running"  # running | finished | stopped | failed
    note: str | None = None


def start(engine: Engine, entry: Entry) -> int:
    row = {
        "started_at": dt.datetime.now(dt.UTC),
        "actor": entry.actor,
        "via": entry.via,
        "action": entry.action,
        "scope": entry.scope,
        "dry_run": entry.dry_run,
        "selected": entry.selected,
        "done": 0,
        "errors": 0,
        "status": "running",
        "messages": [],
    }
    with engine.begin() as conn:
        return int(conn.execute(H.insert().values(row).returning(H.c.id)).scalar_one())


def update(engine: Engine, op_id: int, progress: Progress) -> None:
    values: dict[str, Any] = {
        "done": progress.done,
        "messages": [list(m) for m in progress.messages],
        "status": progress.status,
    }
    if progress.status != "running":
        values["finished_at"] = dt.datetime.now(dt.UTC)
    if progress.note is not None:
        values["note"] = progress.note
    with engine.begin() as conn:
        conn.execute(H.update().where(H.c.id == op_id).values(**values))


def recent(engine: Engine, limit: int = 50) -> list[dict[str, Any]]:
    stmt = sa.select(H).order_by(H.c.id.desc()).limit(limit)
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(stmt)]


def get(engine: Engine, op_id: int) -> dict[str, Any] | None:
    with engine.connect() as conn:
        row = conn.execute(sa.select(H).where(H.c.id == op_id)).first()
    return dict(row._mapping) if row else None

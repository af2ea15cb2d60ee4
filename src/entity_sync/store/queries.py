"""Read-side queries for operators (`entities list`, `explain`, ...)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from entity_sync.store import tables as t


def _rows(engine: Engine, stmt: Any) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(stmt)]


def entities(engine: Engine) -> list[dict[str, Any]]:
    return _rows(engine, sa.select(t.entities).order_by(t.entities.c.entity_id))


def connections(engine: Engine) -> list[dict[str, Any]]:
    return _rows(
        engine,
        sa.select(t.connections).order_by(
            t.connections.c.target_entity, t.connections.c.updated_at
        ),
    )


def settings(engine: Engine) -> list[dict[str, Any]]:
    return _rows(
        engine,
        sa.select(t.share_settings).order_by(
            t.share_settings.c.target_entity, t.share_settings.c.object_type
        ),
    )


def control_levels(engine: Engine) -> list[dict[str, Any]]:
    return _rows(engine, sa.select(t.control_levels).order_by(t.control_levels.c.attribute))


def copies_in(engine: Engine, target: str, object_id: str | None = None) -> list[dict[str, Any]]:
    """The target's copies (of `object_id`: then found by ix_target_copies_source)."""
    c = t.target_copies.c
    stmt = sa.select(t.target_copies, t.connections.c.status).join(
        t.connections, t.connections.c.connection_id == c.connection_id
    )
    stmt = stmt.where(c.target_entity == target)
    if object_id is not None:
        stmt = stmt.where(c.source_object_id == object_id)
    return _rows(engine, stmt.order_by(c.object_type, c.source_object_id))


def history(engine: Engine, target: str, object_id: str, limit: int = 50) -> list[dict[str, Any]]:
    """Decisions about one object for one target, plus rejections of that object's events.

    A row shared by several targets (`targets`, store/decisions.py decision_rows) is read as the one
    decision about `target`, so the result has the shape of one row per decision.
    """
    d = t.decisions.c
    if engine.dialect.name == "postgresql":
        listed: Any = d.targets.op("@>")(sa.func.jsonb_build_array(target))
    else:
        each = sa.func.json_each(d.targets).table_valued("value")
        listed = sa.exists(sa.select(1).select_from(each).where(each.c.value == target))
    stmt = (
        sa.select(t.decisions)
        .where(d.object_id == object_id)
        .where(
            sa.or_(
                d.target_entity == target,
                sa.and_(d.target_entity.is_(None), sa.or_(d.targets.is_(None), listed)),
            )
        )
        .order_by(d.id.desc())
        .limit(limit)
    )
    rows = list(reversed(_rows(engine, stmt)))
    for row in rows:
        if row.pop("targets") is not None:
            row["target_entity"] = target
    return rows


def source(engine: Engine, object_id: str) -> list[dict[str, Any]]:
    s = t.source_objects
    return _rows(engine, sa.select(s).where(s.c.object_id == object_id))


@dataclass(frozen=True)
class Snapshot:
    """Everything the demo's table shows: targets, link statuses, sources, copies, decisions."""

    targets: list[str]
    link_status: dict[str, str]
    sources: list[Any]
    copies: dict[tuple[str, str], Any]
    object_decisions: list[Any]  # decisions about one object, oldest first


def snapshot(engine: Engine) -> Snapshot:
    with engine.connect() as conn:
        targets = [
            r.entity_id
            for r in conn.execute(
                sa.select(t.entities.c.entity_id)
                .where(t.entities.c.is_global.is_(False))
                .order_by(t.entities.c.entity_id)
            )
        ]
        status = {r.target_entity: r.status for r in conn.execute(sa.select(t.connections))}
        sources = list(conn.execute(sa.select(t.source_objects)).all())
        copies = {
            (r.target_entity, r.source_object_id): r
            for r in conn.execute(sa.select(t.target_copies))
        }
        decisions = list(
            conn.execute(
                sa.select(t.decisions)
                .where(t.decisions.c.object_id.isnot(None))
                .order_by(t.decisions.c.id)
            ).all()
        )
    return Snapshot(targets, status, sources, copies, decisions)

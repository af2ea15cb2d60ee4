"""The decision log (rule 9): what was decided about each object for each target, and why.

Written with the batch's state (store/sharing.py flush_state); read by operators through
store/queries.py `history`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy.engine import Connection

from entity_sync.handlers.sharing.model import Decision
from entity_sync.store import tables as t
from entity_sync.store.mapping import RowMap
from entity_sync.store.sql import bulk_insert

DECISIONS = RowMap(Decision, t.decisions)


def insert_decisions(conn: Connection, decisions: Sequence[Decision], at: dt.datetime) -> None:
    bulk_insert(conn, t.decisions, decision_rows(decisions, at))


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
        rows.append(DECISIONS.values(x, at=at, targets=None))
        targets.append([x.target_entity] if x.target_entity is not None else [])
    for row, listed in zip(rows, targets, strict=True):
        if len(listed) > 1:
            row["target_entity"], row["targets"] = None, listed
    return rows

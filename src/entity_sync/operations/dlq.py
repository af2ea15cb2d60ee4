"""Failed messages for operators: list, show, export, replay, purge (docs/dead-letters.md).

Every read first ingests the DLQs (operations/ingest.py) and then reads `failed_messages`, so
looking changes nothing on the broker. Replay publishes each selected message to its original
queue from the stored row, waits for the broker's confirm, then marks the row replayed; purge
marks rows purged. A crash between the confirm and the mark leaves the row open: replaying it
again is harmless (the worker dedupes by `event_id`). Every replay and purge, dry runs too, is
one row of `operation_history` (who, when, scope, which messages, to where, counts).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import IO, Any

import orjson
import structlog

from entity_sync.operations.context import DlqError, Operations
from entity_sync.operations.ingest import Ingested, ingest
from entity_sync.operations.letters import DeadLetter, from_row
from entity_sync.operations.replay import Canary, Mover, MoveResult, Plan
from entity_sync.store import audit, failed
from entity_sync.store.failed import Filter

log = structlog.get_logger("entity_sync.dlq")

__all__ = ["Canary", "DlqError", "Filter", "MoveResult", "Plan"]


@dataclass
class Summary:
    queue: str
    count: int  # distinct failed messages (ids)
    copies: int = 0  # broker copies ingested, extra copies of an id included
    oldest: str = ""
    newest: str = ""
    groups: list[dict[str, Any]] = field(default_factory=list)


def refresh(ops: Operations, queues: Iterable[str]) -> list[Ingested]:
    """Ingest these DLQs now (every read calls this first), and forget messages resolved more
    than ENTITY_SYNC_FAILED_RETENTION_DAYS ago."""
    ops.ensure_schema()
    with ops.broker() as conn:
        ingested = [ingest(conn, ops.engine, q) for q in queues]
    keep = dt.timedelta(days=ops.settings.failed_retention_days)
    failed.prune(ops.engine, dt.datetime.now(dt.UTC) - keep)
    return ingested


def summaries(ops: Operations, queue: str | None) -> list[Summary]:
    names = ops.dlqs(queue)
    refresh(ops, names)
    out = []
    for name in names:
        groups = failed.groups(ops.engine, Filter(queues=[name]))
        out.append(
            Summary(
                queue=name,
                count=sum(g["count"] for g in groups),
                copies=sum(int(g["copies"]) for g in groups),
                oldest=_iso(min((g["first"] for g in groups), default=None)),
                newest=_iso(max((g["last"] for g in groups), default=None)),
                groups=groups,
            )
        )
    return out


def groups(ops: Operations, flt: Filter) -> list[dict[str, Any]]:
    refresh(ops, flt.queues or ops.dlqs())
    return failed.groups(ops.engine, flt)


def letters(
    ops: Operations, flt: Filter, limit: int | None = None, offset: int = 0, *, fresh: bool = True
) -> list[DeadLetter]:
    if fresh:
        refresh(ops, flt.queues or ops.dlqs())
    return [from_row(r) for r in failed.rows(ops.engine, flt, limit, offset)]


def count(ops: Operations, flt: Filter) -> int:
    return failed.count(ops.engine, flt)


def export(ops: Operations, flt: Filter, out: IO[bytes]) -> int:
    """JSON lines, one per failed message: headers, properties, body (base64 if not UTF-8)."""
    written = 0
    for letter in letters(ops, flt):
        out.write(orjson.dumps(letter.as_json(), default=str) + b"\n")
        written += 1
    return written


def replay(
    ops: Operations,
    flt: Filter,
    plan: Plan | None = None,
    on_step: Callable[[MoveResult], None] | None = None,
) -> MoveResult:
    """Publish the selected failed messages to their original queues (see the module doc)."""
    refresh(ops, flt.queues or ops.dlqs())
    return Mover(ops, "replay", flt, on_step).run(plan or Plan())


def purge(
    ops: Operations,
    flt: Filter,
    plan: Plan | None = None,
    on_step: Callable[[MoveResult], None] | None = None,
) -> MoveResult:
    """Mark the selected failed messages purged (kept for the history, never replayed).

    Of the plan, only `limit` and `cancel` apply."""
    refresh(ops, flt.queues or ops.dlqs())
    plan = plan or Plan()
    return Mover(ops, "purge", flt, on_step).run(Plan(limit=plan.limit, cancel=plan.cancel))


def history(ops: Operations, limit: int = 50) -> list[dict[str, Any]]:
    """Replays and purges, newest first."""
    return audit.recent(ops.engine, limit)


def history_entry(ops: Operations, entry_id: int) -> dict[str, Any] | None:
    return audit.get(ops.engine, entry_id)


def parse_time(value: str | None, what: str) -> dt.datetime | None:
    """`2026-12-01`, `2026-12-01T10:00` or with a zone; naive times are UTC."""
    if not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise DlqError(f"{what}: {value!r} is not a date or time", reason="bad_time") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _iso(value: Any) -> str:
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return "" if value is None else str(value)

"""The console's filter: query string (or form) <-> `store.failed.Filter`."""

from __future__ import annotations

from typing import Any

from werkzeug.datastructures import MultiDict

from entity_sync.operations import dlq as core
from entity_sync.operations.context import Operations

STATUSES = ("failed", "replayed", "purged", "")


def read(ops: Operations, args: MultiDict[str, str], *, open_only: bool = False) -> core.Filter:
    """Filter from request args; bad input raises one clear DlqError (shown as a 400 page)."""
    queue = args.get("queue") or None
    status = args.get("status", "failed")
    if status not in STATUSES:
        raise core.DlqError(f"status {status!r} is not one of failed, replayed, purged")
    return core.Filter(
        queues=tuple(ops.dlqs(queue)) if queue else (),
        groups=tuple(g for g in args.getlist("group") if g),
        ids=tuple(i for i in args.getlist("id") if i),
        text=(args.get("text") or "").strip()[:200],
        since=core.parse_time(args.get("since"), "since"),
        until=core.parse_time(args.get("until"), "until"),
        status="failed" if open_only else status,
    )


def args_of(flt: core.Filter) -> dict[str, Any]:
    """The filter as query-string arguments (for links and hidden form fields)."""
    out: dict[str, Any] = {}
    if len(flt.queues) == 1:
        out["queue"] = flt.queues[0]
    if flt.groups:
        out["group"] = list(flt.groups)
    if flt.ids:
        out["id"] = list(flt.ids)
    if flt.text:
        out["text"] = flt.text
    if flt.since:
        out["since"] = flt.since.isoformat()
    if flt.until:
        out["until"] = flt.until.isoformat()
    if flt.status != "failed":
        out["status"] = flt.status
    return out


def pairs(flt: core.Filter) -> list[tuple[str, str]]:
    """The filter as (name, value) pairs, one per hidden input."""
    out: list[tuple[str, str]] = []
    for name, value in args_of(flt).items():
        for item in value if isinstance(value, list) else [value]:
            out.append((name, str(item)))
    return out

"""Failed messages: groups, a group's messages, one message, export, replay and purge."""

from __future__ import annotations

from typing import Any

import orjson
from flask import Blueprint, Response, current_app, redirect, render_template, request, url_for

from entity_sync.operations import dlq as core
from entity_sync.operations.console import filters
from entity_sync.operations.console.access import console_of, operator_only

bp = Blueprint("failed", __name__)
PAGE = 50
PREVIEW = 20


@bp.get("/")
def home() -> Any:
    return redirect(url_for("failed.groups"))


@bp.get("/failed")
def groups() -> Any:
    ops = console_of(current_app).for_request()
    flt = filters.read(ops, request.args)
    rows = core.groups(ops, flt)
    return render_template(
        "groups.html",
        groups=rows,
        total=sum(g["count"] for g in rows),
        flt=flt,
        args=filters.args_of(flt),
        queues=ops.dlqs(),
    )


@bp.get("/failed/messages")
def messages() -> Any:
    ops = console_of(current_app).for_request()
    flt = filters.read(ops, request.args)
    offset = max(0, request.args.get("offset", 0, type=int) or 0)
    letters = core.letters(ops, flt, PAGE, offset)
    return render_template(
        "messages.html",
        letters=letters,
        total=core.count(ops, flt),
        offset=offset,
        page=PAGE,
        flt=flt,
        args=filters.args_of(flt),
        queues=ops.dlqs(),
    )


@bp.get("/failed/message")
def message() -> Any:
    ops = console_of(current_app).for_request()
    queue, message_id = request.args.get("queue", ""), request.args.get("id", "")
    flt = core.Filter(queues=tuple(ops.dlqs(queue)), ids=(message_id,), status="")
    found = core.letters(ops, flt, 1)
    if not found:
        raise core.DlqError(f"no failed message {message_id!r} in {queue!r}", reason="not_found")
    return render_template("message.html", letter=found[0])


@bp.get("/failed/export")
def export() -> Any:
    ops = console_of(current_app).for_request()
    flt = filters.read(ops, request.args)
    lines = b"".join(
        orjson.dumps(letter.as_json(), default=str) + b"\n" for letter in core.letters(ops, flt)
    )
    return Response(
        lines,
        mimetype="application/x-ndjson",
        headers={"Content-Disposition": "attachment; filename=failed-messages.jsonl"},
    )


@bp.get("/failed/act")
def act() -> Any:
    """Count first, and a dry-run preview of what the action would touch."""
    action = request.args.get("action", "replay")
    if action not in ("replay", "purge"):
        raise core.DlqError(f"action {action!r} is not replay or purge")
    console = console_of(current_app)
    ops = console.for_request()
    flt = filters.read(ops, request.args, open_only=True)
    if request.args.get("selection") and not flt.ids:
        raise core.DlqError("select at least one message", reason="nothing_selected")
    preview = core.letters(ops, flt, PREVIEW)
    return render_template(
        "act.html",
        action=action,
        count=core.count(ops, flt),
        preview=preview,
        hidden=filters.pairs(flt),
        args=filters.args_of(flt),
        rate=ops.settings.console_replay_rate,
    )


@bp.post("/failed/replay")
@operator_only
def replay() -> Any:
    console = console_of(current_app)
    ops = console.for_request()
    flt = filters.read(ops, request.form, open_only=True)
    rate = request.form.get("rate", type=float) or None
    if rate is not None and not 0.1 <= rate <= 10_000:
        raise core.DlqError("rate is from 0.1 to 10000 messages per second", reason="bad_rate")
    limit = request.form.get("limit", type=int) or None
    canary = core.Canary(ops.settings.console_canary_seconds)
    plan = core.Plan(
        dry_run=bool(request.form.get("dry_run")),
        limit=limit if limit and limit > 0 else None,
        rate=rate,
        canary=canary if request.form.get("canary") else None,
        cancel=console.jobs.stopping.is_set,
    )
    entry = console.jobs.start(lambda step: core.replay(ops, flt, plan, step))
    return redirect(url_for("other.entry", entry_id=entry))


@bp.post("/failed/purge")
@operator_only
def purge() -> Any:
    console = console_of(current_app)
    ops = console.for_request()
    flt = filters.read(ops, request.form, open_only=True)
    count = core.count(ops, flt)
    typed = " ".join(request.form.get("confirm", "").split())
    if typed != f"purge {count}":
        raise core.DlqError(
            f"type “purge {count}” to purge these {count} messages", reason="not_confirmed"
        )
    plan = core.Plan(cancel=console.jobs.stopping.is_set)
    entry = console.jobs.start(lambda step: core.purge(ops, flt, plan, step))
    return redirect(url_for("other.entry", entry_id=entry))

"""History, sync sessions, why, now."""

from __future__ import annotations

import re
from typing import Any

from flask import (
    Blueprint,
    abort,
    current_app,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)

from entity_sync.handlers.errors import InvalidMessage
from entity_sync.operations import dlq as core
from entity_sync.operations import status as now_
from entity_sync.operations import sync as syncs
from entity_sync.operations.console.access import console_of, operator_only
from entity_sync.operations.explain import explain

bp = Blueprint("other", __name__)
MAX_UI_ACCOUNTS = 8  # what the CRM's account page sends at most (origin "ui")


@bp.get("/history")
def history() -> Any:
    ops = console_of(current_app).for_request()
    return render_template("history.html", entries=core.history(ops, 100))


@bp.get("/history/<int:entry_id>")
def entry(entry_id: int) -> Any:
    ops = console_of(current_app).for_request()
    found = core.history_entry(ops, entry_id)
    if found is None:
        abort(404, f"no history entry {entry_id}")
    return render_template("entry.html", e=found)


@bp.get("/history/<int:entry_id>.json")
def entry_json(entry_id: int) -> Any:
    ops = console_of(current_app).for_request()
    found = core.history_entry(ops, entry_id)
    if found is None:
        abort(404, f"no history entry {entry_id}")
    return jsonify({k: found[k] for k in ("status", "done", "selected", "note")})


@bp.get("/sync")
def sync() -> Any:
    ops = console_of(current_app).for_request()
    return render_template("sync.html", sessions=syncs.history(ops, 30), most=MAX_UI_ACCOUNTS)


@bp.post("/sync")
@operator_only
def sync_start() -> Any:
    ops = console_of(current_app).for_request()
    ids = [i for i in re.split(r"[\s,;]+", request.form.get("ids", "")) if i]
    if not 1 <= len(ids) <= MAX_UI_ACCOUNTS:
        raise InvalidMessage(f"give 1 to {MAX_UI_ACCOUNTS} billing account ids, not {len(ids)}")
    entity = (request.form.get("entity") or "").strip() or None
    request_id = syncs.start(ops, "billing_account", ids, entity=entity, origin="ui")
    return redirect(url_for("other.session", request_id=request_id))


@bp.get("/sync/<request_id>")
def session(request_id: str) -> Any:
    ops = console_of(current_app).for_request()
    return render_template("session.html", request_id=request_id, s=syncs.session(ops, request_id))


@bp.get("/sync/<request_id>.json")
def session_json(request_id: str) -> Any:
    ops = console_of(current_app).for_request()
    found = syncs.session(ops, request_id)
    return jsonify({"done": found is not None, "status": found["status"] if found else None})


@bp.get("/why")
def why() -> Any:
    ops = console_of(current_app).for_request()
    target = (request.args.get("target") or "").strip()
    object_id = (request.args.get("object") or "").strip()
    found = explain(ops, target, object_id) if target and object_id else None
    return render_template("why.html", target=target, object_id=object_id, why=found)


@bp.get("/now")
def now() -> Any:
    ops = console_of(current_app).for_request()
    return render_template("now.html", r=now_.report(ops, sessions=5))


@bp.get("/now.json")
def now_json() -> Any:
    ops = console_of(current_app).for_request()
    report = now_.report(ops, sessions=0)
    return jsonify(
        {
            "queues": report.get("queues", []),
            "queues_error": report.get("queues_error"),
            "outbox_backlog": report.get("outbox_backlog"),
            "bulk_fan_outs": len(report.get("bulk_fan_outs") or []),
        }
    )

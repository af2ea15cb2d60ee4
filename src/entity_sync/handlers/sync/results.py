"""The parts of a `sync.completed` body (schemas/outputs.py SyncCompleted): one result per
synced object (or per CRM account that led to none), the session status, the body itself."""

from __future__ import annotations

import datetime as dt
from typing import Any

from entity_sync.handlers.sync.writer import Outcome
from entity_sync.schemas.inputs import SyncRequest


def result(
    zuora_id: str | None,
    status: str,
    *,
    outcome: Outcome | None = None,
    error: tuple[str, str] | None = None,
    crm_account_id: str | None = None,
) -> dict[str, Any]:
    """`error` (code, message) comes first in `errors`; `crm_account_id` only for crm_account
    requests, so results of the other kinds keep their shape."""
    outcome = outcome or Outcome()
    errors = list(outcome.errors)
    if error is not None:
        errors.insert(
            0, {"code": error[0], "message": error[1], "object": None, "zuora_id": zuora_id}
        )
    body: dict[str, Any] = {"zuora_id": zuora_id}
    if crm_account_id is not None:
        body["crm_account_id"] = crm_account_id
    body.update(status=status, counts=dict(outcome.counts), errors=errors)
    return body


def session_status(results: list[dict[str, Any]]) -> str:
    if all(r["status"] == "failed" for r in results):
        return "failed"
    if all(r["status"] == "synced" and not r["errors"] for r in results):
        return "finished"
    return "finished_with_errors"


def completed(
    req: SyncRequest,
    status: str,
    results: list[dict[str, Any]],
    started: dt.datetime,
    finished: dt.datetime,
    reason: str | None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "request_id": str(req.request_id),
        "status": status,
        "results": results,
        "started_at": _rfc3339(started),
        "finished_at": _rfc3339(finished),
    }
    if reason is not None:
        body["reason"] = reason
    return body


def _rfc3339(at: dt.datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")

"""Tables of `entity-sync sync ... --wait` and `sync history`."""

from __future__ import annotations

from typing import Any

from entity_sync.operations.cli.common import table


def results_table(completed: dict[str, Any], *, by_crm_account: bool) -> None:
    """One row per result; a `crm account` column when the request was by CRM account."""
    results = completed.get("results", [])
    rows = []
    for result in results:
        counts = ", ".join(f"{k}={v}" for k, v in sorted(result.get("counts", {}).items()) if v)
        errors = "; ".join(f"{e['code']}: {e['message']}" for e in result.get("errors", []))
        row = [result.get("zuora_id") or "-", result["status"], counts, errors]
        rows.append([result.get("crm_account_id") or "-", *row] if by_crm_account else row)
    title = f"sync {completed['request_id']}: {completed['status']}"
    if completed.get("reason"):
        title += f" ({completed['reason']})"
    columns = ["zuora id", "status", "upserted", "errors"]
    table(title, ["crm account", *columns] if by_crm_account else columns, rows)


def history_table(sessions: list[tuple[str, dict[str, Any]]]) -> None:
    rows = []
    for kind, session in sessions:
        results = session.get("results", [])
        rows.append(
            [
                session["request_id"],
                kind,
                session["status"] + (f" ({session['reason']})" if session.get("reason") else ""),
                len(results),
                *[sum(r["status"] == s for r in results) for s in ("synced", "failed", "skipped")],
                session.get("finished_at"),
            ]
        )
    columns = ["request", "kind", "status", "results", "synced", "failed", "skipped", "finished"]
    table("sync sessions", columns, rows)

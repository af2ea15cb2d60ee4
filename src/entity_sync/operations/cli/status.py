"""`status`: queues, consumers, dead letters, outbox, schema and the last sync sessions."""

from __future__ import annotations

import datetime as dt
from typing import Any

import click
from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table

from entity_sync.operations import status as now
from entity_sync.operations.cli.common import echo_json, operations


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--sessions", default=10, show_default=True, help="Sync sessions to show.")
def status(as_json: bool, sessions: int) -> None:
    """Queue depths and consumers, failed messages, outbox backlog and the last sync sessions.

    Each part is read on its own: an unreachable broker or database is reported, not fatal.
    A DLQ's figures include failed messages ingested and not yet replayed or purged.
    """
    with operations() as ops:
        report = now.report(ops, sessions)
    if as_json:
        echo_json(report)
        return
    _render(report)


def _render(report: dict[str, Any]) -> None:
    parts: list[Any] = [_head(report), _queues(report)]
    bulk = report.get("bulk_fan_outs") or []
    if bulk:
        parts.append(
            _table(
                "bulk fan-outs running",
                ["kind", "target", "done / total", "since", "cause"],
                [_bulk_row(j) for j in bulk],
            )
        )
    sessions = report.get("sync_sessions") or []
    if sessions:
        columns = list(sessions[0])
        rows = [[_text(row[c]) for c in columns] for row in sessions]
        parts.append(_table("last sync sessions", columns, rows))
    Console(soft_wrap=False).print(
        Panel(Group(*parts), title=f"entity-sync status ({report['prefix']})", expand=False)
    )


def _bulk_row(job: dict[str, Any]) -> list[str]:
    progress = f"{job['done']} / {job['total']}"
    return [
        job["kind"],
        job["target_entity"],
        progress,
        _text(job["created_at"]),
        job["cause_event_id"],
    ]


def _head(report: dict[str, Any]) -> Table:
    head = Table.grid(padding=(0, 2))
    head.add_row("broker", str(report["broker"]).replace(";", ";\n"))  # a cluster: one per line
    head.add_row("database", str(report["database"]))
    if "outbox_backlog" in report:
        head.add_row("outbox backlog", str(report["outbox_backlog"]))
    if "schema" in report:
        schema = report["schema"]
        state = "current" if schema["current"] == schema["head"] else "NOT CURRENT"
        head.add_row("schema", f"{schema['current'] or 'empty'} (head {schema['head']}, {state})")
    if "database_error" in report:
        head.add_row("database error", f"[red]{report['database_error']}[/red]")
    return head


def _queues(report: dict[str, Any]) -> Table | str:
    if "queues_error" in report:
        return f"[red]broker unavailable:[/red] {report['queues_error']}"
    queues = Table(title="queues", header_style="bold", title_justify="left")
    for col, justify in (("queue", "left"), ("kind", "left"), ("messages", "right")):
        queues.add_column(col, justify=justify)  # type: ignore[arg-type]
    queues.add_column("consumers", justify="right")
    for q in report["queues"]:
        messages = "missing" if q["messages"] is None else str(q["messages"])
        if q.get("failed") is not None and q["failed"] != q["messages"]:
            messages = f"{q['failed']} ({q['messages']} copies)"
        style = "red" if q["kind"] == "dlq" and (q["messages"] or 0) > 0 else None
        queues.add_row(q["queue"], q["kind"], messages, _text(q["consumers"]), style=style)
    return queues


def _table(title: str, columns: list[str], rows: list[list[Any]]) -> Table:
    table = Table(title=title, header_style="bold", title_justify="left")
    for col in columns:
        table.add_column(col, overflow="fold")
    for row in rows:
        table.add_row(*row)
    return table


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return value.isoformat(timespec="seconds")
    return str(value)
